//! Reading a packet's bytes at an offset from its network header.

use aya_ebpf::programs::SkBuffContext;

/// The `T` at packet offset `off`: read in place when the packet's linear data holds it
/// (the headers always are, for the packets this host sends and receives), copied by
/// `bpf_skb_load_bytes` otherwise. In place costs a few instructions; the helper call
/// cost more than the rest of a non-DNS socket's run, seven times per DNS packet.
#[inline(always)]
pub fn load<T: Copy>(ctx: &SkBuffContext, off: u32) -> Option<T> {
    // SAFETY: context fields readable by cgroup_skb programs (direct packet access).
    let (start, end) = unsafe {
        (
            (*ctx.skb.skb).data as usize,
            (*ctx.skb.skb).data_end as usize,
        )
    };
    let at = start + off as usize;
    // At least two bytes: for one, the compiler turns `at + 1 <= end` into `at < end`,
    // from which the verifier grants no byte at all.
    if at + core::mem::size_of::<T>().max(2) <= end {
        // SAFETY: inside the linear data, as checked against its end right above.
        return Some(unsafe { core::ptr::read_unaligned(at as *const T) });
    }
    ctx.load::<T>(off as usize).ok()
}

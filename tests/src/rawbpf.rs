//! Programs loaded with raw bpf(2) calls, standing for someone else's: a packet counter
//! (the coexistence test) and empty pass-through programs (the benchmarks' floors).

use std::os::fd::AsRawFd as _;

const BPF_MAP_CREATE: i64 = 0;
const BPF_MAP_LOOKUP_ELEM: i64 = 1;
const BPF_PROG_LOAD: i64 = 5;
const BPF_PROG_ATTACH: i64 = 8;
const BPF_PROG_DETACH: i64 = 9;
const MAP_TYPE_ARRAY: u32 = 2;
const PROG_TYPE_CGROUP_SKB: u32 = 8;
const PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
const CGROUP_INET_INGRESS: u32 = 0;
const CGROUP_INET_EGRESS: u32 = 1;
const CGROUP_INET4_CONNECT: u32 = 10;
const F_ALLOW_MULTI: u32 = 2;

fn bpf(cmd: i64, attr: &mut [u8; 128]) -> std::io::Result<i64> {
    // SAFETY: attr is a zeroed bpf_attr-sized buffer with the command's fields set.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn put32(a: &mut [u8; 128], off: usize, v: u32) {
    a[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(a: &mut [u8; 128], off: usize, v: u64) {
    a[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

/// One eBPF instruction.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = (src << 4) | dst;
    b[2..4].copy_from_slice(&off.to_ne_bytes());
    b[4..8].copy_from_slice(&imm.to_ne_bytes());
    b
}

/// Loads a program of type `kind`, `code`, named `name`, for attach type `expected`.
fn load(kind: u32, code: &[[u8; 8]], name: &[u8], expected: u32) -> std::io::Result<i64> {
    let code = code.concat();
    let license = c"GPL";
    let mut a = [0u8; 128];
    put32(&mut a, 0, kind);
    put32(&mut a, 4, (code.len() / 8) as u32);
    put64(&mut a, 8, code.as_ptr() as u64);
    put64(&mut a, 16, license.as_ptr() as u64);
    // prog_name: 16 bytes, NUL-terminated.
    a[48..48 + name.len().min(15)].copy_from_slice(&name[..name.len().min(15)]);
    put32(&mut a, 68, expected);
    bpf(BPF_PROG_LOAD, &mut a)
}

/// Attaches `prog` to `cgroup` at `at`, beside whatever is there (BPF_F_ALLOW_MULTI).
fn attach_multi(cgroup: &std::fs::File, prog: i64, at: u32) -> std::io::Result<()> {
    let mut a = [0u8; 128];
    put32(&mut a, 0, cgroup.as_raw_fd() as u32);
    put32(&mut a, 4, prog as u32);
    put32(&mut a, 8, at);
    put32(&mut a, 12, F_ALLOW_MULTI);
    bpf(BPF_PROG_ATTACH, &mut a).map(drop)
}

/// Detaches `prog` from `cgroup` at `at`, then closes it.
fn detach_and_close(cgroup: &std::fs::File, prog: i64, at: &[u32]) {
    for at in at {
        let mut a = [0u8; 128];
        put32(&mut a, 0, cgroup.as_raw_fd() as u32);
        put32(&mut a, 4, prog as u32);
        put32(&mut a, 8, *at);
        let _ = bpf(BPF_PROG_DETACH, &mut a);
    }
    // SAFETY: closing a program descriptor this module created.
    unsafe { libc::close(prog as i32) };
}

/// Someone else's program, attached to a cgroup's egress with BPF_F_ALLOW_MULTI: it
/// counts packets in an array map and lets them pass.
pub struct Counter {
    map: i64,
    prog: i64,
    cgroup: std::fs::File,
}

impl Counter {
    /// Loads and attaches it.
    pub fn attach(cgroup: &std::path::Path) -> std::io::Result<Self> {
        let mut a = [0u8; 128];
        put32(&mut a, 0, MAP_TYPE_ARRAY);
        put32(&mut a, 4, 4);
        put32(&mut a, 8, 8);
        put32(&mut a, 12, 1);
        let map = bpf(BPF_MAP_CREATE, &mut a)?;
        let code = [
            insn(0x62, 10, 0, -4, 0),        // *(u32 *)(r10 - 4) = 0
            insn(0xbf, 2, 10, 0, 0),         // r2 = r10
            insn(0x07, 2, 0, 0, -4),         // r2 += -4
            insn(0x18, 1, 1, 0, map as i32), // r1 = map (ld_imm64, pseudo map fd)
            insn(0x00, 0, 0, 0, 0),
            insn(0x85, 0, 0, 0, 1), // call bpf_map_lookup_elem
            insn(0x15, 0, 0, 2, 0), // if r0 == 0 goto +2
            insn(0xb7, 1, 0, 0, 1), // r1 = 1
            insn(0xdb, 0, 1, 0, 0), // lock *(u64 *)(r0 + 0) += r1
            insn(0xb7, 0, 0, 0, 1), // r0 = 1 (pass)
            insn(0x95, 0, 0, 0, 0), // exit
        ];
        let prog = load(PROG_TYPE_CGROUP_SKB, &code, b"counter", CGROUP_INET_EGRESS)?;
        let cgroup = std::fs::File::open(cgroup)?;
        attach_multi(&cgroup, prog, CGROUP_INET_EGRESS)?;
        Ok(Self { map, prog, cgroup })
    }

    /// Packets it has counted.
    pub fn packets(&self) -> u64 {
        let key = 0u32;
        let mut value = 0u64;
        let mut a = [0u8; 128];
        put32(&mut a, 0, self.map as u32);
        put64(&mut a, 8, &key as *const u32 as u64);
        put64(&mut a, 16, &mut value as *mut u64 as u64);
        bpf(BPF_MAP_LOOKUP_ELEM, &mut a).map(|_| value).unwrap_or(0)
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        detach_and_close(&self.cgroup, self.prog, &[CGROUP_INET_EGRESS]);
        // SAFETY: closing the map descriptor this struct created.
        unsafe { libc::close(self.map as i32) };
    }
}

/// A program that does nothing but allow (`r0 = 1; exit`): what the kernel's dispatch
/// and run-time accounting for a cgroup hook cost by themselves, the floor under any
/// program there.
pub struct Pass {
    prog: i64,
    at: &'static [u32],
    cgroup: std::fs::File,
}

/// Where the cgroup_skb `Pass` is attached.
const BOTH: [u32; 2] = [CGROUP_INET_INGRESS, CGROUP_INET_EGRESS];
/// Where the connect4 `Pass` is attached.
const CONNECT4: [u32; 1] = [CGROUP_INET4_CONNECT];

/// `r0 = 1; exit`.
const ALLOW: [[u8; 8]; 2] = [
    [0xb7, 0, 0, 0, 1, 0, 0, 0], // r0 = 1
    [0x95, 0, 0, 0, 0, 0, 0, 0], // exit
];

impl Pass {
    /// Loads it once as a cgroup_skb program named `floor_pass` and attaches it to both
    /// directions of `cgroup`.
    pub fn attach(cgroup: &std::path::Path) -> std::io::Result<Self> {
        let prog = load(
            PROG_TYPE_CGROUP_SKB,
            &ALLOW,
            b"floor_pass",
            CGROUP_INET_INGRESS,
        )?;
        Self::attach_at(cgroup, prog, &BOTH)
    }

    /// Loads it as a cgroup/connect4 program named `floor_connect4` and attaches it there.
    pub fn attach_connect4(cgroup: &std::path::Path) -> std::io::Result<Self> {
        let prog = load(
            PROG_TYPE_CGROUP_SOCK_ADDR,
            &ALLOW,
            b"floor_connect4",
            CGROUP_INET4_CONNECT,
        )?;
        Self::attach_at(cgroup, prog, &CONNECT4)
    }

    fn attach_at(cgroup: &std::path::Path, prog: i64, at: &'static [u32]) -> std::io::Result<Self> {
        let cgroup = match std::fs::File::open(cgroup) {
            Ok(f) => f,
            Err(e) => {
                // SAFETY: closing the program descriptor just loaded.
                unsafe { libc::close(prog as i32) };
                return Err(e);
            }
        };
        // Built first, so a failed attach below still detaches and closes what it did.
        let pass = Self { prog, at, cgroup };
        for a in at {
            attach_multi(&pass.cgroup, prog, *a)?;
        }
        Ok(pass)
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        detach_and_close(&self.cgroup, self.prog, self.at);
    }
}

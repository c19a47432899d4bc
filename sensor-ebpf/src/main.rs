//! mxsentry kernel programs: SMTP connects (cgroup/connect4|6), local resolvers
//! (cgroup/bind4|6, cgroup/sendmsg4|6) and DNS packets (cgroup_skb egress|ingress).
#![no_std]
#![no_main]
// Per-CPU counters need an atomic add, which core's atomics do not offer on the BPF target.
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod asked;
mod blocks;
mod capture;
mod connect;
mod counters;
mod dns;
mod ipv6;
mod maps;
mod nametag;
mod packet;
mod qname;
mod resolver;
mod task;
mod tcp;
mod udp;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any reachable panic path, so this is never entered.
    loop {}
}

// cgroup_skb programs that use bpf_skb_cgroup_id and friends need a GPL-compatible licence.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

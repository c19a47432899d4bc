//! cgroup/connect4 and cgroup/connect6: report SMTP connects, refuse blocked ones,
//! and note local resolvers' upstream sockets.

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::cgroup_sock_addr, programs::SockAddrContext};
use sensor_common::{
    ConnectEvent, EventKind, Verdict,
    event::{AF_INET, AF_INET6},
};

use crate::{
    blocks::{addr_hit_v4, addr_hit_v6},
    counters::{count_lost, verdict_for},
    maps::{CONNECT_EVENTS, SMTP_PORTS},
    resolver::{DNS_PORT, mark_if_resolver},
    task,
};

/// `bpf_ringbuf_submit` flag: do not wake the consumer.
const BPF_RB_NO_WAKEUP: u64 = 1;
/// Return value that lets the connect proceed.
const ALLOW: i32 = 1;
/// Return value that makes connect() fail with EPERM.
const REFUSE: i32 = 0;

#[cgroup_sock_addr(connect4)]
pub fn mx_connect4(ctx: SockAddrContext) -> i32 {
    // SAFETY: the kernel hands a valid bpf_sock_addr for the program's lifetime.
    let (port, ip4) = unsafe { ((*ctx.sock_addr).user_port, (*ctx.sock_addr).user_ip4) };
    let port = u16::from_be(port as u16);
    if !is_smtp(port) {
        // Connected UDP and TCP upstream sockets of a local resolver (unbound, resolved).
        if port == DNS_PORT {
            mark_if_resolver(&ctx);
        }
        return ALLOW;
    }
    let v4 = ip4.to_ne_bytes();
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&v4);
    let verdict = verdict_for(addr_hit_v4(v4));
    emit(AF_INET, port, addr, verdict)
}

#[cgroup_sock_addr(connect6)]
pub fn mx_connect6(ctx: SockAddrContext) -> i32 {
    // SAFETY: as in mx_connect4.
    let (port, ip6) = unsafe { ((*ctx.sock_addr).user_port, (*ctx.sock_addr).user_ip6) };
    let port = u16::from_be(port as u16);
    if !is_smtp(port) {
        if port == DNS_PORT {
            mark_if_resolver(&ctx);
        }
        return ALLOW;
    }
    let mut addr = [0u8; 16];
    for (i, w) in ip6.iter().enumerate() {
        addr[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    let verdict = verdict_for(addr_hit_v6(&addr));
    emit(AF_INET6, port, addr, verdict)
}

#[inline(always)]
fn is_smtp(port: u16) -> bool {
    // The upgrade test's variant build: one more compare, so its programs' tags differ.
    #[cfg(feature = "upgrade-variant")]
    if port == 0 {
        return false;
    }
    matches!(SMTP_PORTS.get(port as u32), Some(v) if *v != 0)
}

#[inline(always)]
fn emit(family: u16, port: u16, addr: [u8; 16], verdict: Verdict) -> i32 {
    match CONNECT_EVENTS.reserve::<ConnectEvent>(0) {
        Some(mut entry) => {
            let caller = task::current();
            // SAFETY: a plain helper call valid in cgroup/connect programs.
            let ts_ns = unsafe { bpf_ktime_get_ns() };
            entry.write(ConnectEvent {
                kind: EventKind::Connect as u32,
                family,
                port,
                ts_ns,
                tgid: caller.tgid,
                pid: caller.pid,
                verdict: verdict as u32,
                reserved: 0,
                cgroup_id: caller.cgroup_id,
                addr,
                comm: caller.comm,
            });
            // No wakeup: on a VM the wakeup (an IPI) costs more than the rest of the
            // program. The verdict is already made here; the agent drains this ring on
            // a short timer, so the event is only reported a little later.
            entry.submit(BPF_RB_NO_WAKEUP);
        }
        None => count_lost(EventKind::Connect),
    }
    if verdict == Verdict::Blocked {
        REFUSE
    } else {
        ALLOW
    }
}

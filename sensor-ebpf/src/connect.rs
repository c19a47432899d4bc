//! cgroup/connect4 and cgroup/connect6: report SMTP connects, refuse blocked ones,
//! and note local resolvers' upstream sockets.

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::cgroup_sock_addr, programs::SockAddrContext};
use sensor_common::{
    ConnectEvent, EventKind, STANDARD_SMTP_PORTS, Verdict,
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

// Two builds of each program (`sensor_common::PortSet`): `mx_connect4` and `mx_connect6`
// know the standard SMTP ports as constants, so a connect to any other port reads no
// memory but its own address; the `_cfg` builds look each port up in `SMTP_PORTS`.
// Everything past the port check is a subprogram of its own, so the fast path's code
// spans two or three cache lines of the JIT image (by where the load puts it), not the
// whole program's: on a VM, every cache line a connect touches that the connect path does
// not costs 5-20 ns, and this runs on every connect of the host.

#[cgroup_sock_addr(connect4)]
pub fn mx_connect4(ctx: SockAddrContext) -> i32 {
    connect(&ctx, is_standard_smtp, smtp4)
}

#[cgroup_sock_addr(connect4)]
pub fn mx_connect4_cfg(ctx: SockAddrContext) -> i32 {
    connect(&ctx, is_configured_smtp, smtp4)
}

#[cgroup_sock_addr(connect6)]
pub fn mx_connect6(ctx: SockAddrContext) -> i32 {
    connect(&ctx, is_standard_smtp, smtp6)
}

#[cgroup_sock_addr(connect6)]
pub fn mx_connect6_cfg(ctx: SockAddrContext) -> i32 {
    connect(&ctx, is_configured_smtp, smtp6)
}

/// The connect's port as the socket address holds it: network order.
#[inline(always)]
fn raw_port(ctx: &SockAddrContext) -> u16 {
    // SAFETY: the kernel hands a valid bpf_sock_addr for the program's lifetime.
    unsafe { (*ctx.sock_addr).user_port as u16 }
}

/// The program for one family: `smtp` (`smtp4` or `smtp6`) for an SMTP port.
#[inline(always)]
fn connect(
    ctx: &SockAddrContext,
    is_smtp: fn(u16) -> bool,
    smtp: fn(&SockAddrContext, u16) -> i32,
) -> i32 {
    let raw = raw_port(ctx);
    if is_smtp(raw) {
        return smtp(ctx, u16::from_be(raw));
    }
    // Connected UDP and TCP upstream sockets of a local resolver (unbound, resolved).
    if raw == DNS_PORT.to_be() {
        return resolver_connect(ctx);
    }
    ALLOW
}

#[inline(never)]
fn resolver_connect(ctx: &SockAddrContext) -> i32 {
    mark_if_resolver(ctx);
    ALLOW
}

#[inline(never)]
fn smtp4(ctx: &SockAddrContext, port: u16) -> i32 {
    // SAFETY: as in raw_port.
    let v4 = unsafe { (*ctx.sock_addr).user_ip4 }.to_ne_bytes();
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&v4);
    let verdict = verdict_for(addr_hit_v4(v4));
    emit(AF_INET, port, addr, verdict)
}

#[inline(never)]
fn smtp6(ctx: &SockAddrContext, port: u16) -> i32 {
    // SAFETY: as in raw_port.
    let ip6 = unsafe { (*ctx.sock_addr).user_ip6 };
    let mut addr = [0u8; 16];
    for (i, w) in ip6.iter().enumerate() {
        addr[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    let verdict = verdict_for(addr_hit_v6(&addr));
    emit(AF_INET6, port, addr, verdict)
}

/// Whether `raw` (network order) is one of `STANDARD_SMTP_PORTS`, compared as
/// constants (swapped at build time, so not even the port is swapped here).
#[inline(always)]
fn is_standard_smtp(raw: u16) -> bool {
    // The upgrade test's variant build: one more compare, so its programs' tags differ
    // (through black_box: the compiler would drop a compare the others make redundant).
    #[cfg(feature = "upgrade-variant")]
    if core::hint::black_box(raw) == 0 {
        return false;
    }
    let [a, b, c] = STANDARD_SMTP_PORTS;
    raw == a.to_be() || raw == b.to_be() || raw == c.to_be()
}

/// Whether `raw` (network order) is a port the agent set in `SMTP_PORTS`.
#[inline(always)]
fn is_configured_smtp(raw: u16) -> bool {
    #[cfg(feature = "upgrade-variant")]
    if raw == 0 {
        return false;
    }
    matches!(SMTP_PORTS.get(u32::from(u16::from_be(raw))), Some(v) if *v != 0)
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

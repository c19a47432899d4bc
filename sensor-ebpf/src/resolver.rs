//! Local caching resolvers: their upstream sockets are marked exempt from answer drops.
//!
//! A resolver whose upstream answers vanish marks that upstream as failing and slows
//! every lookup on the host, so the answer is dropped one hop later, at the socket of
//! the process that asked the resolver. `RESOLVER_TGIDS` lists resolver processes:
//! the bind hooks add any process that binds port 53, and the agent adds those that
//! did so before it ran. In process context, a resolver's socket that talks to port
//! 53 is recorded by cookie in `DNS_EXEMPT`, which the packet programs consult.

use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_get_current_pid_tgid, bpf_get_socket_cookie},
    macros::cgroup_sock_addr,
    programs::SockAddrContext,
};

use crate::maps::{DNS_EXEMPT, RESOLVER_TGIDS};

/// Return value that lets the bind or send proceed.
const ALLOW: i32 = 1;
/// The DNS port, host order.
pub const DNS_PORT: u16 = 53;

/// Records this socket as exempt when the calling process is a local resolver.
#[inline(always)]
pub fn mark_if_resolver(ctx: &SockAddrContext) {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: read-only lookup of a plain u32 value.
    if unsafe { RESOLVER_TGIDS.get(tgid) }.is_none() {
        return;
    }
    // SAFETY: helper valid for cgroup sock_addr programs.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    // A full map evicts its least recently used cookie; failure leaves the socket
    // unexempt, which costs only when a blocked name is asked through it.
    let _ = DNS_EXEMPT.insert(cookie, tgid, 0);
}

/// Records the calling process as a resolver when it binds port 53.
#[inline(always)]
fn note_bind(port: u32) {
    if u16::from_be(port as u16) == DNS_PORT {
        let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
        // A full map leaves the process unlisted: the agent's scan is the second chance.
        let _ = RESOLVER_TGIDS.insert(tgid, 1, 0);
    }
}

/// `bind()` of an IPv4 socket: a process taking port 53 serves DNS.
#[cgroup_sock_addr(bind4)]
pub fn mx_bind4(ctx: SockAddrContext) -> i32 {
    // SAFETY: the kernel hands a valid bpf_sock_addr for the program's lifetime.
    note_bind(unsafe { (*ctx.sock_addr).user_port });
    ALLOW
}

/// As `mx_bind4`, for IPv6.
#[cgroup_sock_addr(bind6)]
pub fn mx_bind6(ctx: SockAddrContext) -> i32 {
    // SAFETY: as in mx_bind4.
    note_bind(unsafe { (*ctx.sock_addr).user_port });
    ALLOW
}

/// `sendmsg()` with an address on an unconnected UDP socket (dnsmasq's upstream queries).
#[cgroup_sock_addr(sendmsg4)]
pub fn mx_sendmsg4(ctx: SockAddrContext) -> i32 {
    // SAFETY: the kernel hands a valid bpf_sock_addr for the program's lifetime.
    let port = unsafe { (*ctx.sock_addr).user_port };
    if u16::from_be(port as u16) == DNS_PORT {
        mark_if_resolver(&ctx);
    }
    ALLOW
}

/// As `mx_sendmsg4`, for IPv6.
#[cgroup_sock_addr(sendmsg6)]
pub fn mx_sendmsg6(ctx: SockAddrContext) -> i32 {
    // SAFETY: as in mx_sendmsg4.
    let port = unsafe { (*ctx.sock_addr).user_port };
    if u16::from_be(port as u16) == DNS_PORT {
        mark_if_resolver(&ctx);
    }
    ALLOW
}

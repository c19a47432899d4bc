//! One hand-built packet out through a raw socket (CAP_NET_RAW).

use std::net::IpAddr;

use anyhow::Context as _;

/// Sends `packet` to `to` through a new raw socket of `protocol`: with `IPPROTO_TCP` on
/// IPv4 the kernel writes the IP header in front of the segment; with `IPPROTO_RAW` on
/// IPv6 the packet holds its own.
pub fn send(to: IpAddr, protocol: libc::c_int, packet: &[u8]) -> anyhow::Result<()> {
    let family = match to {
        IpAddr::V4(_) => libc::AF_INET,
        IpAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain socket creation.
    let fd = unsafe { libc::socket(family, libc::SOCK_RAW, protocol) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("raw socket");
    }
    let sent = match to {
        IpAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from(a).to_be(),
                },
                sin_zero: [0; 8],
            };
            send_to(fd, packet, &sin)
        }
        IpAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.octets(),
                },
                sin6_scope_id: 0,
            };
            send_to(fd, packet, &sin6)
        }
    };
    let err = std::io::Error::last_os_error();
    // SAFETY: closing the socket made above.
    unsafe { libc::close(fd) };
    if sent != packet.len() as isize {
        return Err(err).context("sendto");
    }
    Ok(())
}

/// `sendto(fd, packet, addr)`; what it returned.
fn send_to<A>(fd: libc::c_int, packet: &[u8], addr: &A) -> isize {
    // SAFETY: a valid socket, a live buffer and a live socket address of type `A` (one of
    // libc's sockaddr structs), each with its length.
    unsafe {
        libc::sendto(
            fd,
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (addr as *const A).cast(),
            std::mem::size_of::<A>() as libc::socklen_t,
        )
    }
}

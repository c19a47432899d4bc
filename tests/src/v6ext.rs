//! IPv6 extension headers on a hostile server's replies: destination options (and
//! hop-by-hop) headers that the receiving host's IPv6 skips, so the socket reads a plain
//! DNS reply while a program that expects the transport header right after the IPv6
//! header finds something else there.
//!
//! TCP replies carry them as sticky socket options; UDP replies go out through a raw
//! socket, so there can be any number of them. Both need CAP_NET_RAW.

use std::{
    net::{IpAddr, SocketAddr, SocketAddrV6},
    os::fd::RawFd,
};

use anyhow::{Context as _, bail};

/// One destination options header of 8 bytes: `next`, length 0 (8 bytes), and a PadN
/// option filling the rest.
fn options_header(next: u8) -> [u8; 8] {
    [next, 0, 1, 4, 0, 0, 0, 0]
}

/// Makes every packet `fd` (an IPv6 socket) sends carry a destination options header,
/// and a hop-by-hop options header before it when `n` is 2 or more.
pub fn sticky(fd: RawFd, n: usize) -> anyhow::Result<()> {
    let mut opts = vec![(libc::IPV6_DSTOPTS, "IPV6_DSTOPTS")];
    if n >= 2 {
        opts.push((libc::IPV6_HOPOPTS, "IPV6_HOPOPTS"));
    }
    for (opt, what) in opts {
        // The kernel fills in the next-header byte.
        let h = options_header(0);
        // SAFETY: a valid socket and a live buffer with its length.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_IPV6,
                opt,
                h.as_ptr().cast(),
                h.len() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context(what);
        }
    }
    Ok(())
}

/// Extension headers between the IPv6 and the UDP header of a raw reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    /// Destination options headers.
    pub options: usize,
    /// Then the fragment header of an atomic fragment (offset 0, no more fragments),
    /// which the receiving IPv6 skips and delivers the packet as it is (RFC 6946).
    pub atomic_fragment: bool,
}

impl Chain {
    fn len(self) -> usize {
        8 * (self.options + usize::from(self.atomic_fragment))
    }
}

/// The IPv6 packet of a UDP datagram carrying `payload` from `from` to `to`, with the
/// extension headers of `chain` between the IPv6 and the UDP header.
pub fn udp_packet(from: &SocketAddrV6, to: &SocketAddrV6, payload: &[u8], chain: Chain) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    // Each header's number, in order, then UDP's.
    let mut numbers = vec![60u8; chain.options];
    if chain.atomic_fragment {
        numbers.push(44);
    }
    numbers.push(17);
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&((chain.len() + udp_len) as u16).to_be_bytes());
    p.push(numbers[0]);
    p.push(64);
    p.extend_from_slice(&from.ip().octets());
    p.extend_from_slice(&to.ip().octets());
    for i in 0..chain.options {
        p.extend_from_slice(&options_header(numbers[i + 1]));
    }
    if chain.atomic_fragment {
        // Next header, reserved, offset 0 with M clear, an identification.
        p.extend_from_slice(&[17, 0, 0, 0, 0x6d, 0x78, 0x73, 0x01]);
    }
    let mut udp = Vec::with_capacity(udp_len);
    udp.extend_from_slice(&from.port().to_be_bytes());
    udp.extend_from_slice(&to.port().to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let c = crate::checksum::internet(&[
        &from.ip().octets(),
        &to.ip().octets(),
        &(udp_len as u32).to_be_bytes(),
        &[0, 0, 0, 17],
        &udp,
    ]);
    // Zero means "no checksum", which IPv6 does not allow: send its other form.
    let c = if c == 0 { 0xffff } else { c };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    p.extend(udp);
    p
}

/// Sends `payload` as a UDP datagram from `from` to `to` behind the headers of `chain`,
/// through a raw socket that writes the whole IPv6 packet.
pub fn send_udp(
    from: SocketAddr,
    to: SocketAddr,
    payload: &[u8],
    chain: Chain,
) -> anyhow::Result<()> {
    let (SocketAddr::V6(from), SocketAddr::V6(to)) = (from, to) else {
        bail!("IPv6 only: {from} -> {to}");
    };
    let packet = udp_packet(&from, &to, payload, chain);
    crate::rawsock::send(IpAddr::V6(*to.ip()), libc::IPPROTO_RAW, &packet)
        .context("sending the datagram")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_leads_to_udp_and_the_checksum_verifies() {
        let from: SocketAddrV6 = "[fd77::2]:53".parse().unwrap();
        let to: SocketAddrV6 = "[fd77::1]:40000".parse().unwrap();
        let chain = Chain {
            options: 3,
            atomic_fragment: true,
        };
        let p = udp_packet(&from, &to, b"abc", chain);
        assert_eq!(p.len(), 40 + 32 + 8 + 3);
        assert_eq!(u16::from_be_bytes([p[4], p[5]]) as usize, p.len() - 40);
        assert_eq!((p[6], p[40], p[48], p[56], p[64]), (60, 60, 60, 44, 17));
        assert_eq!(&p[66..68], &[0, 0], "offset 0, no more fragments");
        let udp = &p[72..];
        let sum = crate::checksum::internet(&[
            &p[8..24],
            &p[24..40],
            &(udp.len() as u32).to_be_bytes(),
            &[0, 0, 0, 17],
            udp,
        ]);
        assert_eq!(sum, 0);
    }
}

//! A bare SYN into an established TCP connection, as an attacker on the server side can
//! send one: the receiving host's TCP discards it (a challenge ACK), but every program
//! on the path sees it first.
//!
//! The sequence number is the server socket's own (read in `TCP_REPAIR` mode, which needs
//! CAP_NET_ADMIN), and the segment goes out through a raw socket (CAP_NET_RAW).

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream},
    os::fd::AsRawFd as _,
};

use anyhow::{Context as _, bail};

/// `TCP_REPAIR_QUEUE` value selecting the send queue (linux/tcp.h).
const TCP_SEND_QUEUE: libc::c_int = 2;

/// Sequence number of the next byte `s` will send.
pub fn next_send_seq(s: &TcpStream) -> anyhow::Result<u32> {
    let fd = s.as_raw_fd();
    set(fd, libc::TCP_REPAIR, 1).context("TCP_REPAIR on")?;
    let seq = set(fd, libc::TCP_REPAIR_QUEUE, TCP_SEND_QUEUE).and_then(|()| {
        let mut v: u32 = 0;
        let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
        // SAFETY: a valid socket and a live u32 with its length.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_QUEUE_SEQ,
                (&raw mut v).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(v)
    });
    // Out of repair mode whatever happened, so the connection carries on.
    set(fd, libc::TCP_REPAIR, 0).context("TCP_REPAIR off")?;
    seq.context("TCP_QUEUE_SEQ")
}

fn set(fd: i32, opt: libc::c_int, v: libc::c_int) -> std::io::Result<()> {
    // SAFETY: a valid socket and a live int.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            opt,
            (&raw const v).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Sends a bare SYN with sequence number `seq` from `from` to `to` (IPv4).
pub fn send_syn(from: SocketAddr, to: SocketAddr, seq: u32) -> anyhow::Result<()> {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (from.ip(), to.ip()) else {
        bail!("IPv4 only: {from} -> {to}");
    };
    let seg = syn_segment(src, dst, from.port(), to.port(), seq);
    crate::rawsock::send(IpAddr::V4(dst), libc::IPPROTO_TCP, &seg).context("sending the SYN")
}

/// A 20-byte TCP header with only SYN set, its checksum over the IPv4 pseudo-header.
fn syn_segment(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, seq: u32) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..8].copy_from_slice(&seq.to_be_bytes());
    h[12] = 5 << 4;
    h[13] = 0x02;
    h[14..16].copy_from_slice(&64240u16.to_be_bytes());
    let c = crate::checksum::internet(&[
        &src.octets(),
        &dst.octets(),
        &[0, libc::IPPROTO_TCP as u8, 0, 20],
        &h,
    ]);
    h[16..18].copy_from_slice(&c.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_sums_to_all_ones() {
        let (src, dst) = (Ipv4Addr::new(10, 77, 0, 2), Ipv4Addr::new(10, 77, 0, 1));
        let h = syn_segment(src, dst, 53, 40000, 0x1234_5678);
        let mut sum: u32 = 0;
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&src.octets());
        bytes.extend_from_slice(&dst.octets());
        bytes.extend_from_slice(&[0, 6, 0, 20]);
        bytes.extend_from_slice(&h);
        for w in bytes.chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
    }
}

//! Segments an attacker on the server side sends outside its socket: a bare SYN into an
//! established connection (the receiving host's TCP discards it with a challenge ACK, but
//! every program on the path sees it first), and data at a sequence number of its choice.
//!
//! Sequence numbers are the server socket's own (read in `TCP_REPAIR` mode, which needs
//! CAP_NET_ADMIN), and the segments go out through a raw socket (CAP_NET_RAW).

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream},
    os::fd::AsRawFd as _,
};

use anyhow::{Context as _, bail};

/// `TCP_REPAIR_QUEUE` values selecting the receive and the send queue (linux/tcp.h).
const TCP_RECV_QUEUE: libc::c_int = 1;
const TCP_SEND_QUEUE: libc::c_int = 2;
/// TCP header flags.
const SYN: u8 = 0x02;
const PSH_ACK: u8 = 0x18;
/// PSH alone: data with no acknowledgement.
const PSH: u8 = 0x08;

/// Sequence number of the next byte `s` will send.
pub fn next_send_seq(s: &TcpStream) -> anyhow::Result<u32> {
    queue_seq(s, TCP_SEND_QUEUE)
}

/// Sequence number of the next byte `s` expects from its peer (what it acknowledges).
pub fn next_recv_seq(s: &TcpStream) -> anyhow::Result<u32> {
    queue_seq(s, TCP_RECV_QUEUE)
}

fn queue_seq(s: &TcpStream, queue: libc::c_int) -> anyhow::Result<u32> {
    let fd = s.as_raw_fd();
    set(fd, libc::TCP_REPAIR, 1).context("TCP_REPAIR on")?;
    let seq = set(fd, libc::TCP_REPAIR_QUEUE, queue).and_then(|()| {
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
    send(
        from,
        to,
        &Segment {
            seq,
            ack: 0,
            flags: SYN,
        },
        &[],
    )
    .context("sending the SYN")
}

/// Sends `data` at sequence number `seq`, acknowledging `ack`, from `from` to `to` (IPv4).
pub fn send_data(
    from: SocketAddr,
    to: SocketAddr,
    seq: u32,
    ack: u32,
    data: &[u8],
) -> anyhow::Result<()> {
    let h = Segment {
        seq,
        ack,
        flags: PSH_ACK,
    };
    send(from, to, &h, data).context("sending the data")
}

/// Sends `data` at sequence number `seq` with no ACK flag (PSH alone), from `from` to `to`
/// (IPv4): a segment the receiving host's TCP discards, whatever it carries.
pub fn send_unacked(from: SocketAddr, to: SocketAddr, seq: u32, data: &[u8]) -> anyhow::Result<()> {
    let h = Segment {
        seq,
        ack: 0,
        flags: PSH,
    };
    send(from, to, &h, data).context("sending the unacknowledging segment")
}

/// What a hand-built segment's header says.
struct Segment {
    seq: u32,
    ack: u32,
    flags: u8,
}

fn send(from: SocketAddr, to: SocketAddr, h: &Segment, data: &[u8]) -> anyhow::Result<()> {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (from.ip(), to.ip()) else {
        bail!("IPv4 only: {from} -> {to}");
    };
    let seg = segment(src, dst, from.port(), to.port(), h, data);
    crate::rawsock::send(IpAddr::V4(dst), libc::IPPROTO_TCP, &seg)
}

/// A TCP segment with a 20-byte header, its checksum over the IPv4 pseudo-header.
fn segment(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    s: &Segment,
    data: &[u8],
) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..8].copy_from_slice(&s.seq.to_be_bytes());
    h[8..12].copy_from_slice(&s.ack.to_be_bytes());
    h[12] = 5 << 4;
    h[13] = s.flags;
    h[14..16].copy_from_slice(&64240u16.to_be_bytes());
    h.extend_from_slice(data);
    let len = (h.len() as u16).to_be_bytes();
    let c = crate::checksum::internet(&[
        &src.octets(),
        &dst.octets(),
        &[0, libc::IPPROTO_TCP as u8, len[0], len[1]],
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
        let syn = Segment {
            seq: 0x1234_5678,
            ack: 0,
            flags: SYN,
        };
        let h = segment(src, dst, 53, 40000, &syn, &[]);
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

//! Turning raw ring-buffer records into typed events, without trusting their size.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use sensor_common::{
    ConnectEvent, DnsHeader, EventKind,
    event::{AF_INET, AF_INET6, DNS_CLASSES, DNS_HEADER_SIZE},
};

/// A decoded kernel event.
#[derive(Clone)]
pub enum KernelEvent {
    /// An SMTP connect.
    Connect(Box<ConnectEvent>),
    /// A DNS record: part of a message (UDP) or of a stream (TCP), or a TCP message
    /// record; `records::assemble` puts them back together.
    Dns(DnsPart),
}

/// One DNS record: its header and the bytes it carries.
#[derive(Clone, Debug)]
pub struct DnsPart {
    /// The record's header.
    pub hdr: DnsHeader,
    /// `hdr.cap_len` bytes.
    pub data: Vec<u8>,
}

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the 4-byte kind tag.
    #[error("record of {0} bytes has no kind tag")]
    Short(usize),
    /// A tag this agent does not know.
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
    /// The size does not match the kind's struct.
    #[error("{kind} record has {got} bytes, expected {want}")]
    Size {
        /// Event kind name.
        kind: &'static str,
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
    /// A DNS record says it carries more bytes than its size class holds.
    #[error("dns record of class {class} says it carries {cap_len} bytes")]
    CapLen {
        /// The record's data size class.
        class: usize,
        /// The length it claims.
        cap_len: u32,
    },
}

fn read<T: Copy>(bytes: &[u8], kind: EventKind) -> Result<T, DecodeError> {
    let want = size_of::<T>();
    if bytes.len() != want {
        return Err(DecodeError::Size {
            kind: kind.name(),
            got: bytes.len(),
            want,
        });
    }
    // SAFETY: length checked; T is a repr(C) Pod of integers and byte arrays, so
    // every bit pattern is valid; read_unaligned makes no alignment assumption.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<KernelEvent, DecodeError> {
    let tag: [u8; 4] = bytes
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(DecodeError::Short(bytes.len()))?;
    let tag = u32::from_ne_bytes(tag);
    match EventKind::from_u32(tag) {
        Some(EventKind::Connect) => Ok(KernelEvent::Connect(Box::new(read(
            bytes,
            EventKind::Connect,
        )?))),
        Some(EventKind::Dns) => Ok(KernelEvent::Dns(dns(bytes)?)),
        None => Err(DecodeError::UnknownKind(tag)),
    }
}

/// A DNS record: a header alone, or a header and data of one of the size classes.
fn dns(bytes: &[u8]) -> Result<DnsPart, DecodeError> {
    let class = bytes.len().wrapping_sub(DNS_HEADER_SIZE);
    if class != 0 && !DNS_CLASSES.contains(&class) {
        return Err(DecodeError::Size {
            kind: EventKind::Dns.name(),
            got: bytes.len(),
            want: DNS_HEADER_SIZE + DNS_CLASSES[0],
        });
    }
    let hdr: DnsHeader = read(&bytes[..DNS_HEADER_SIZE], EventKind::Dns)?;
    let data = usize::try_from(hdr.cap_len)
        .ok()
        .filter(|&n| n <= class)
        .and_then(|n| bytes.get(DNS_HEADER_SIZE..DNS_HEADER_SIZE + n))
        .ok_or(DecodeError::CapLen {
            class,
            cap_len: hdr.cap_len,
        })?;
    Ok(DnsPart {
        hdr,
        data: data.to_vec(),
    })
}

/// The address in a 16-byte field, by family.
pub fn ip(family: u16, raw: &[u8; 16]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(*raw))),
        _ => None,
    }
}

/// A NUL-padded kernel string as text.
pub fn comm(raw: &[u8; 16]) -> String {
    let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use sensor_common::Verdict;

    use super::*;

    fn connect_bytes() -> Vec<u8> {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"smtp");
        let ev = ConnectEvent {
            kind: EventKind::Connect as u32,
            family: AF_INET,
            port: 25,
            ts_ns: 42,
            tgid: 7,
            pid: 8,
            verdict: Verdict::Blocked as u32,
            reserved: 0,
            cgroup_id: 99,
            addr: [192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            comm,
        };
        // SAFETY: ConnectEvent is repr(C) without padding.
        unsafe {
            std::slice::from_raw_parts(
                (&ev as *const ConnectEvent).cast::<u8>(),
                size_of::<ConnectEvent>(),
            )
        }
        .to_vec()
    }

    #[test]
    fn round_trip_connect() {
        let KernelEvent::Connect(ev) = decode(&connect_bytes()).unwrap() else {
            panic!("kind")
        };
        assert_eq!((ev.port, ev.tgid, ev.pid, ev.cgroup_id), (25, 7, 8, 99));
        assert_eq!(comm(&ev.comm), "smtp");
        assert_eq!(ip(ev.family, &ev.addr), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(Verdict::from_u32(ev.verdict), Some(Verdict::Blocked));
    }

    #[test]
    fn bad_records_are_errors_not_panics() {
        assert_eq!(decode(&[]).err(), Some(DecodeError::Short(0)));
        assert_eq!(
            decode(&[9, 0, 0, 0]).err(),
            Some(DecodeError::UnknownKind(9))
        );
        let b = connect_bytes();
        assert!(matches!(
            decode(&b[..40]),
            Err(DecodeError::Size { got: 40, .. })
        ));
        let mut dns = vec![0u8; 100];
        dns[0] = EventKind::Dns as u8;
        assert!(matches!(
            decode(&dns),
            Err(DecodeError::Size { kind: "dns", .. })
        ));
        // A header alone is a message record; with a class of data, a data record whose
        // length must fit its class.
        let mut rec = vec![0u8; DNS_HEADER_SIZE + DNS_CLASSES[0]];
        rec[0] = EventKind::Dns as u8;
        let cap = std::mem::offset_of!(DnsHeader, cap_len);
        rec[cap..cap + 4].copy_from_slice(&3u32.to_ne_bytes());
        rec[DNS_HEADER_SIZE..DNS_HEADER_SIZE + 4].copy_from_slice(b"abcd");
        let Ok(KernelEvent::Dns(part)) = decode(&rec) else {
            panic!("a data record")
        };
        assert_eq!(part.data, b"abc");
        rec[cap..cap + 4].copy_from_slice(&513u32.to_ne_bytes());
        assert_eq!(
            decode(&rec).err(),
            Some(DecodeError::CapLen {
                class: 512,
                cap_len: 513
            })
        );
        rec[cap..cap + 4].copy_from_slice(&0u32.to_ne_bytes());
        assert!(matches!(
            decode(&rec[..DNS_HEADER_SIZE]),
            Ok(KernelEvent::Dns(DnsPart { data, .. })) if data.is_empty()
        ));
    }

    #[test]
    fn unknown_family_has_no_address() {
        assert_eq!(ip(99, &[0; 16]), None);
        assert_eq!(comm(&[b'a'; 16]), "aaaaaaaaaaaaaaaa");
    }
}

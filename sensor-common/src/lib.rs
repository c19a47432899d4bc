//! Types shared by the mxsentry kernel programs and the agent.
//!
//! Everything here is `no_std`, `#[repr(C)]` and free of implicit padding so the
//! kernel and the agent read the same bytes the same way.
#![no_std]

pub mod event;
pub mod maps;
pub mod qname;

pub use event::{ConnectEvent, DnsEvent, EventKind, Verdict, DNS_CAPTURE_LEN};
pub use qname::{qname_hash, QNAME_OFFSET};

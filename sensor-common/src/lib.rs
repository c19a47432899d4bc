//! Types shared by the mxsentry kernel programs and the agent.
//!
//! Everything here is `no_std`, `#[repr(C)]` and free of implicit padding so the
//! kernel and the agent read the same bytes the same way.
#![no_std]

pub mod event;
pub mod maps;
pub mod qname;
pub mod task;

pub use event::{ConnectEvent, DNS_CAPTURE_LEN, DnsEvent, EventKind, Verdict};
pub use qname::{QNAME_OFFSET, QnameHashes, domain_hash, qname_hash, qname_hashes};
pub use task::TaskLayout;

//! Types shared by the mxsentry kernel programs and the agent: the kernel↔user contract.
//!
//! Everything here is `no_std`, `#[repr(C)]` and free of implicit padding so the
//! kernel and the agent read the same bytes the same way. `programs` and `maps` list
//! what the kernel object must contain; `verdict` is the one block rule both sides run.
#![no_std]

pub mod event;
pub mod maps;
pub mod programs;
pub mod qname;
pub mod tag;
pub mod task;
pub mod verdict;

pub use event::{ConnectEvent, DnsHeader, DnsRecord, EventKind};
pub use maps::BlockEntry;
pub use programs::{Hook, PortSet, Program, STANDARD_SMTP_PORTS};
pub use qname::{QNAME_OFFSET, QnameHashes, domain_hash, qname_hash, qname_hashes, stem_hash};
pub use task::TaskLayout;
pub use verdict::{Verdict, verdict_for};

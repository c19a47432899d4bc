//! Kernel ring-buffer records: decoding them without trusting their size, putting DNS
//! messages back together from them, and rendering them as JSON lines for `--raw-events`.

pub mod assemble;
pub mod decode;
pub mod raw;

pub use assemble::{Assembler, DnsMessage};
pub use decode::{DecodeError, DnsPart, KernelEvent, decode};

//! Kernel events: decoding ring-buffer records and rendering them as JSON lines.

pub mod decode;
pub mod record;

pub use decode::{DecodeError, KernelEvent, decode};

//! Kernel ring-buffer records: decoding them without trusting their size, and rendering
//! them as JSON lines for `--raw-events`.

pub mod decode;
pub mod raw;

pub use decode::{DecodeError, KernelEvent, decode};

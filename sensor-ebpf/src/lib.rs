//! Library target only so `sensor-user` can declare a build dependency on this crate
//! and cargo rebuilds it when the kernel programs change; the programs are the binary.
#![no_std]

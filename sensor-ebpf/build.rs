//! Rebuild the kernel programs when bpf-linker changes: cargo cannot see it as a dependency.
//! And link them without `--bpf-expand-memcpy-in-order`, which bpf-linker passes to LLVM
//! by default: it turns every `memset` (a struct zeroed, a default value) into a call to
//! a byte-at-a-time loop, which cost a DNS answer about 200 ns in five calls on a host
//! with return-thunk mitigations. Without it LLVM writes them as a few wide stores.
fn main() {
    match which::which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(e) => println!("cargo:warning=bpf-linker not found ({e}); run `cargo xtask setup`"),
    }
    println!("cargo:rustc-link-arg-bins=--disable-expand-memcpy-in-order");
}

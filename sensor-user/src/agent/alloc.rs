//! How the agent's heap gives memory back.

/// Makes freed large allocations go back to the system for the agent's whole life.
///
/// glibc raises its mmap threshold to the size of the first large block freed. The agent
/// frees several megabytes at start (the kernel's BTF, read for the connect programs'
/// `task_struct` layout, and aya's own copy), after which such blocks would come from the
/// heap and stay resident: 13 MB more RSS at idle. A fixed threshold keeps the default
/// behaviour for everything else.
pub fn return_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// glibc's default threshold (128 KiB), fixed so it no longer moves.
        const THRESHOLD: i32 = 128 * 1024;
        // SAFETY: mallopt only changes allocator tuning, under glibc's own locks.
        if unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD) } != 1 {
            log::warn!("mallopt(M_MMAP_THRESHOLD) refused; idle memory may be higher");
        }
    }
}

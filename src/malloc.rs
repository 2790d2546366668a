//! Allocator tuning for the bulk data paths.
//!
//! A record is about 87 KB of text and 64 KiB of plaintext, and the body
//! paths allocate and free such buffers on different threads. glibc gives
//! freed memory back to the kernel as soon as 128 KiB sit free at the top of
//! a thread's heap, so every few records the next allocation faults fresh,
//! zeroed pages in again. On a 2-core machine that page churn contends with
//! the page cache being filled by the same transfer (it cost a third of the
//! throughput of a 1 GiB `put` in bench/run, see docs/performance.md).
//! Keeping a few MiB of freed heap avoids it; memory use stays bounded by
//! the queues, which are bounded in records.

/// How much free memory a heap may keep before glibc trims it.
pub const TRIM_THRESHOLD: usize = 32 << 20;

/// Applies the tuning; called first thing by both binaries and the benchmark driver. A no-op where
/// the C library is not glibc.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters (under the
    // allocator's own lock, so any thread may call it), with valid codes.
    unsafe {
        // Setting either value also stops glibc from raising the mmap
        // threshold on its own, so buffers up to 1 MiB always come from the
        // heap (reused) rather than from fresh mappings.
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

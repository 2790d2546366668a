//! The C allocator's tuning for bulk transfers, set once at start.
//!
//! A transfer moves 256 KiB batches between threads (read → seal → front
//! door, and the reverse). glibc serves blocks of that size with `mmap`
//! and gives them back with `munmap` (or trims the arena top), so every
//! batch lands on fresh pages: measured on a 1 GiB `get`, 75,000–168,000
//! page faults in remod and 45,000 in `remo`, about a quarter of remod's
//! CPU (docs/performance.md). Keeping such blocks in the arenas makes the
//! memory reused instead: at most a few MiB more resident per thread arena.

/// Blocks up to this size come from the arenas, not from `mmap`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 4 << 20;

/// Free memory at an arena's top is returned to the system only above this.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 16 << 20;

/// Applies the tuning; call first in `main`, before any thread starts. An
/// admin's own `GLIBC_TUNABLES` for malloc is left in force.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let own = std::env::var_os("GLIBC_TUNABLES")
            .is_some_and(|v| v.to_string_lossy().contains("glibc.malloc."));
        if !own {
            // SAFETY: mallopt only sets allocator parameters; called
            // before other threads exist.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
                libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
            }
        }
    }
}

//! How the `deeptrain` process asks glibc's malloc to treat a training step's memory.
//!
//! A step allocates and frees every intermediate tensor, hundreds of kilobytes to
//! megabytes each. With glibc's defaults, blocks that size are `mmap`ped and handed back to
//! the kernel when freed (or trimmed off the top of the heap), and the next step faults
//! them in and zeroes them again: ~275k page faults and ~8% of an MNIST MLP epoch. Raising
//! the mmap and trim thresholds keeps them in the heap for the next step: ~6.5k faults,
//! the speed mimalloc gave, at the resident size of the live heap (mimalloc kept ~40 MB
//! more of freed memory at the MNIST job's peak). Done with `mallopt` rather than an
//! allocator crate, because glibc's allocator with these two settings is what the job
//! needs; other C libraries are left as they are.

/// Blocks up to this size come from the heap, not from `mmap` (glibc's default starts at
/// 128 KiB and adapts up to 32 MiB).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 32 << 20;
/// Free memory at the top of the heap kept for reuse, up to this much.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 256 << 20;

/// Sets glibc's malloc up for training (see the module comment); does nothing with other
/// C libraries. `main_with` calls it first; a program that trains without the CLI can
/// call it at its start.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes two of malloc's tuning parameters; it is called
    // before the training threads start, and a refused value leaves glibc's default.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

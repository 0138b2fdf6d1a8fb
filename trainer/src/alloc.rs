//! Keeps the C allocator from handing big blocks back to the kernel.
//!
//! Every gradient update builds a few megabyte-sized host buffers and
//! tensors. glibc serves blocks that large with `mmap` and returns them with
//! `munmap` when freed, so each update paid for fresh zeroed pages: measured
//! here, about half of the CPU time went to the kernel and updates ran ~30 %
//! slower. Raising the mmap and trim thresholds lets freed blocks be reused.

/// Raises glibc's mmap threshold to its maximum (32 MiB on 64-bit) and the
/// trim threshold to 1 GiB, once per process (later calls do nothing). The
/// training loops call it ([`crate::train::train`], [`crate::distil::distil`]),
/// so every caller, a binary or a test, gets it; binaries also call it at
/// the start of `main`, before any thread of theirs starts.
pub fn keep_freed_memory() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only sets allocator parameters, under glibc's lock
        // of the main arena; allocations in other threads stay valid (only
        // where later blocks come from changes).
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        }
    });
}

//! Entry point: parse the command line and hand over to the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    keep_freed_blocks_for_reuse();
    signtop::cli::main()
}

/// By default glibc's malloc gives every freed block over 128 KiB-32 MiB back
/// to the kernel at once. tract allocates each intermediate tensor of every
/// model run afresh, so each frame then costs thousands of page faults, and
/// with two threads running models each unmapping stalls the other core as
/// well (the hand model: 14 ms alone, 21 ms each when two run at once). Kept
/// in the heap instead, the blocks are reused the next frame (15 ms each).
/// One heap for all threads: with one per thread each would keep its own
/// spare blocks (the headless monitor peaked at 167 MiB, not 125).
fn keep_freed_blocks_for_reuse() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's tuning; no thread has started yet.
    unsafe {
        // 32 MiB is the largest threshold glibc accepts.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

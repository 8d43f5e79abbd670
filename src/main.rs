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
        heap_in_huge_pages();
    }
}

/// Heap the process takes at once, in huge pages (more than a frame's
/// models use: the monitor's peak is about 130 MiB, its binary included).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const HEAP_RESERVE: usize = 128 << 20;

/// A transparent huge page (x86-64, aarch64 with 4 KiB pages).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const HUGE_PAGE: usize = 2 << 20;

/// Asks for the heap's next [`HEAP_RESERVE`] in transparent huge pages.
/// Every frame the models read some 12 MB of weights and write and read
/// back tens of MB of tensors, in 4 KiB pages a few thousand TLB entries:
/// in 2 MiB pages, frames took 12-15% less time (bench, both clips, 258 and
/// 1662, interleaved). Most systems hand out huge pages only where a
/// program asks (`madvise`, the default), and glibc asks only when told by
/// the `glibc.malloc.hugetlb` tunable, read at start-up from the
/// environment. So here the heap grows at once by a 16 MiB block and the
/// reserve (as the top padding glibc adds to a growth), that range is
/// advised huge, and the block is freed: the trim threshold keeps the range
/// in the heap, and the model runs' tensors reuse it. Pages are taken only
/// when touched (peak memory 2-8 MiB more). Nothing changes where the kernel
/// refuses (huge pages off) or the heap cannot grow.
///
/// # Safety
/// Before any other thread starts (it changes malloc's tuning and reads the
/// program break).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe fn heap_in_huge_pages() {
    const DEFAULT_TOP_PAD: i32 = 128 << 10;
    // SAFETY: the caller's; the block is freed once, the advised range is
    // the heap's own, mapped memory (between the block and the break).
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, HEAP_RESERVE as i32);
        let block = libc::malloc(16 << 20);
        let brk = libc::sbrk(0);
        let (first, end) = (block as usize, brk as usize);
        // The block comes from the heap below the break unless glibc had to
        // map it apart (the heap could not grow).
        if !block.is_null() && brk as isize != -1 && first < end {
            let start = first.next_multiple_of(HUGE_PAGE);
            let end = end / HUGE_PAGE * HUGE_PAGE;
            if start < end {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
        libc::free(block);
        libc::mallopt(libc::M_TOP_PAD, DEFAULT_TOP_PAD);
    }
}

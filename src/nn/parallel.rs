//! The landmark threads: one rayon pool, a thread per core, on which a
//! frame's models run. The hands run beside the pose; each model's big
//! convolutions and each crop are cut into parts ([`for_each_part`],
//! [`for_each_band`]) that a free thread takes; and while a frame runs
//! (`Holistic::process`, or one timed model in `bench --models`), the pool's
//! other thread stays awake to take them ([`with_helper`]).
//!
//! Why the helper: a rayon thread with nothing to do falls asleep within
//! tens of microseconds, and waking it (on this 2-vCPU VM) took ~55 us on
//! average, about half of a typical convolution: cut into parts, the models
//! ran only 5-15% faster. Kept awake for the length of a frame, it takes a
//! part as soon as one is there.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

/// Fewest multiply-adds worth a part of their own on another thread (tens
/// of microseconds): below it, handing the part over costs more than it saves.
pub const MIN_PART_WORK: usize = 1 << 14;

/// Parts per thread of the current pool: more than one, so a thread that
/// comes free late (from another model) still finds some.
const PARTS_PER_THREAD: usize = 1;

/// How often (in idle polls) a waiting helper lets other programs' threads
/// run on its core.
const POLLS_PER_OS_YIELD: u32 = 64;

/// A pool of one landmark thread per core (at least one).
pub fn landmark_threads() -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    rayon::ThreadPoolBuilder::new()
        .num_threads(cores)
        .thread_name(|i| format!("landmarks-{i}"))
        .build()
}

/// How many parts `work` multiply-adds are best cut into on the current
/// thread's pool (1, all on this thread, outside a pool of several threads).
pub fn part_count(work: usize) -> usize {
    let threads = rayon::current_num_threads();
    if threads < 2 || rayon::current_thread_index().is_none() {
        return 1;
    }
    (work / MIN_PART_WORK).clamp(1, threads * PARTS_PER_THREAD)
}

/// `0..len` cut into at most `parts` consecutive ranges of about the same
/// length, each (but the last) a multiple of `align`.
pub fn split(len: usize, align: usize, parts: usize) -> Vec<Range<usize>> {
    let align = align.max(1);
    let units = len.div_ceil(align);
    let parts = parts.clamp(1, units.max(1));
    (0..parts)
        .map(|i| (units * i / parts * align).min(len)..(units * (i + 1) / parts * align).min(len))
        .filter(|range| !range.is_empty())
        .collect()
}

/// Runs `work` on each part, on whichever threads of the current pool are
/// free (all here when there is one part).
pub fn for_each_part<P: Send>(parts: Vec<P>, work: impl Fn(P) + Sync + Send) {
    use rayon::prelude::*;
    if parts.len() < 2 {
        parts.into_iter().for_each(work);
    } else {
        parts.into_par_iter().for_each(work);
    }
}

/// Runs `work` on bands of consecutive rows of `values` (whole rows of
/// `row_len` values; a partial last row is left alone) on the free threads of
/// the current pool: `work(rows, band)` gets the band's row numbers and its
/// values alone. `row_work` is what a row costs, in multiply-adds.
pub fn for_each_band<T: Send>(
    values: &mut [T],
    row_len: usize,
    row_work: usize,
    work: impl Fn(Range<usize>, &mut [T]) + Sync + Send,
) {
    let rows = values.len().checked_div(row_len).unwrap_or(0);
    let bands = split(rows, 1, part_count(rows * row_work));
    let mut parts = Vec::with_capacity(bands.len());
    let mut rest = &mut values[..rows * row_len];
    for band in bands {
        let (these, after) = rest.split_at_mut(band.len() * row_len);
        parts.push((band, these));
        rest = after;
    }
    for_each_part(parts, |(rows, band)| work(rows, band));
}

/// Runs `work` here while the pool's other threads, when free, take the
/// parts it hands out instead of sleeping (see the module's comment).
pub fn with_helper<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    if rayon::current_num_threads() < 2 || rayon::current_thread_index().is_none() {
        return work();
    }
    let done = AtomicBool::new(false);
    let (result, ()) = rayon::join(
        || {
            // Set however `work` ends: a panic must not leave the helper
            // waiting for ever (join waits for it before passing the panic on).
            let _finished = SetOnDrop(&done);
            work()
        },
        || help_until(&done),
    );
    result
}

/// Takes pending work from the pool until `done` is set.
fn help_until(done: &AtomicBool) {
    let mut idle_polls = 0u32;
    while !done.load(Ordering::Acquire) {
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => idle_polls = 0,
            _ => {
                idle_polls += 1;
                if idle_polls.is_multiple_of(POLLS_PER_OS_YIELD) {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
        }
    }
}

/// Sets its flag when dropped.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn split_covers_the_range_once_in_aligned_parts() {
        for (len, align, parts) in [(49, 6, 8), (12, 4, 3), (100, 1, 7), (5, 16, 4), (0, 6, 3)] {
            let ranges = split(len, align, parts);
            assert!(ranges.len() <= parts.max(1));
            let mut next = 0;
            for r in &ranges {
                assert_eq!(r.start, next, "{len} {align} {parts}: {ranges:?}");
                assert!(r.start % align == 0);
                next = r.end;
            }
            assert_eq!(next, len, "{ranges:?}");
        }
        assert_eq!(split(12, 4, 3), [0..4, 4..8, 8..12]);
        assert_eq!(split(49, 6, 2), [0..24, 24..49]);
    }

    #[test]
    fn one_part_outside_a_pool_and_on_a_one_thread_pool() {
        assert_eq!(part_count(usize::MAX), 1);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        assert_eq!(one.install(|| part_count(usize::MAX)), 1);
        let many = rayon::ThreadPoolBuilder::new()
            .num_threads(8)
            .build()
            .unwrap();
        assert_eq!(
            many.install(|| part_count(usize::MAX)),
            8 * PARTS_PER_THREAD
        );
        assert_eq!(many.install(|| part_count(MIN_PART_WORK - 1)), 1);
        assert_eq!(many.install(|| part_count(5 * MIN_PART_WORK)), 5);
    }

    #[test]
    fn bands_hand_each_whole_row_to_one_call() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        // 10 rows of 3 and a partial row of 2.
        let mut values = vec![0usize; 32];
        let calls = std::sync::atomic::AtomicUsize::new(0);
        pool.install(|| {
            for_each_band(&mut values, 3, MIN_PART_WORK, |rows, band| {
                calls.fetch_add(1, Ordering::Relaxed);
                assert_eq!(band.len(), rows.len() * 3);
                for (i, row) in band.chunks_exact_mut(3).enumerate() {
                    row.iter_mut().for_each(|v| *v += rows.start + i + 1);
                }
            })
        });
        assert_eq!(calls.into_inner(), 2, "one band per thread");
        let expected: Vec<usize> = (0..32)
            .map(|i| if i < 30 { i / 3 + 1 } else { 0 })
            .collect();
        assert_eq!(values, expected);
    }

    #[test]
    fn the_helper_takes_parts_while_the_work_runs() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let threads = Mutex::new(std::collections::HashSet::new());
        pool.install(|| {
            with_helper(|| {
                // Parts long enough that a thread kept awake takes some.
                for_each_part((0..64).collect(), |_: i32| {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    threads
                        .lock()
                        .unwrap()
                        .insert(rayon::current_thread_index());
                });
            })
        });
        assert_eq!(threads.into_inner().unwrap().len(), 2);
    }

    #[test]
    fn a_panic_in_the_work_reaches_the_caller_and_frees_the_helper() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let caught =
            pool.install(|| std::panic::catch_unwind(|| with_helper(|| panic!("model failed"))));
        assert!(caught.is_err());
        // The pool still runs work afterwards.
        assert_eq!(pool.install(|| with_helper(|| 7)), 7);
    }
}

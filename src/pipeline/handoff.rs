//! Bounded hand-off between two pipeline threads over a lock-free SPSC ring
//! (ringbuf): the newest item always wins and every item lost is counted.
//!
//! The producer pushes without blocking; when the ring is full it evicts the
//! oldest item (a drop) to make room. The consumer either takes the newest
//! item, skipping older ones (drops), or drains everything in order (for
//! decisions, which must not be skipped). The consumer half sits behind a
//! mutex only so the producer can evict on overflow; the common path takes it
//! uncontended.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::Thread;
use std::time::Duration;

use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

/// Counters of one hand-off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct HandoffStats {
    /// Items offered by the producer.
    pub pushed: u64,
    /// Items the consumer received.
    pub taken: u64,
    /// Items lost: evicted when the ring was full or skipped for a newer one.
    pub dropped: u64,
}

struct Shared<T> {
    cons: Mutex<HeapCons<T>>,
    pushed: AtomicU64,
    taken: AtomicU64,
    dropped: AtomicU64,
    closed: AtomicBool,
    consumer_thread: OnceLock<Thread>,
}

impl<T> Shared<T> {
    fn cons(&self) -> MutexGuard<'_, HeapCons<T>> {
        self.cons.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stats(&self) -> HandoffStats {
        HandoffStats {
            pushed: self.pushed.load(Ordering::Acquire),
            taken: self.taken.load(Ordering::Acquire),
            dropped: self.dropped.load(Ordering::Acquire),
        }
    }

    fn wake_consumer(&self) {
        if let Some(thread) = self.consumer_thread.get() {
            thread.unpark();
        }
    }
}

/// The sending half of a hand-off; dropping it closes the hand-off.
pub struct Sender<T> {
    prod: HeapProd<T>,
    shared: Arc<Shared<T>>,
}

/// The receiving half of a hand-off.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

/// A read-only view of a hand-off's counters, for the metrics.
#[derive(Clone)]
pub struct StatsHandle {
    read: Arc<dyn Fn() -> HandoffStats + Send + Sync>,
}

impl StatsHandle {
    /// The counters now.
    pub fn get(&self) -> HandoffStats {
        (self.read)()
    }
}

/// What a wait for an item gave.
#[derive(Debug, PartialEq)]
pub enum Recv<T> {
    /// An item.
    Item(T),
    /// Nothing arrived in time.
    Empty,
    /// The sender is gone and the ring is empty.
    Closed,
}

/// A hand-off holding at most `capacity` items (at least one).
pub fn handoff<T: Send + 'static>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let (prod, cons) = HeapRb::<T>::new(capacity.max(1)).split();
    let shared = Arc::new(Shared {
        cons: Mutex::new(cons),
        pushed: AtomicU64::new(0),
        taken: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        closed: AtomicBool::new(false),
        consumer_thread: OnceLock::new(),
    });
    (
        Sender {
            prod,
            shared: Arc::clone(&shared),
        },
        Receiver { shared },
    )
}

impl<T: Send + 'static> Sender<T> {
    /// Offers an item; evicts (and counts) the oldest one if the ring is full.
    /// Returns whether an item was evicted.
    pub fn push(&mut self, item: T) -> bool {
        self.shared.pushed.fetch_add(1, Ordering::AcqRel);
        let mut evicted = false;
        let mut item = item;
        loop {
            match self.prod.try_push(item) {
                Ok(()) => break,
                Err(back) => {
                    item = back;
                    if self.shared.cons().try_pop().is_some() {
                        self.shared.dropped.fetch_add(1, Ordering::AcqRel);
                        evicted = true;
                    }
                }
            }
        }
        self.shared.wake_consumer();
        evicted
    }

    /// Offers an item without losing any: waits while the ring is full
    /// (lossless delivery). Gives the item up, uncounted as a drop, only when
    /// `give_up` says so (a stop); returns whether it was delivered.
    pub fn push_waiting(&mut self, item: T, give_up: impl Fn() -> bool) -> bool {
        self.shared.pushed.fetch_add(1, Ordering::AcqRel);
        let mut item = item;
        loop {
            match self.prod.try_push(item) {
                Ok(()) => {
                    self.shared.wake_consumer();
                    return true;
                }
                Err(back) if !give_up() => {
                    item = back;
                    self.shared.wake_consumer();
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return false,
            }
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> HandoffStats {
        self.shared.stats()
    }

    /// A handle to read the counters from another thread.
    pub fn stats_handle(&self) -> StatsHandle {
        let shared = Arc::clone(&self.shared);
        StatsHandle {
            read: Arc::new(move || shared.stats()),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake_consumer();
    }
}

impl<T: Send + 'static> Receiver<T> {
    /// The newest item, counting the older ones it skips as dropped.
    pub fn take_newest(&self) -> Option<T> {
        let mut cons = self.shared.cons();
        let mut newest = None;
        while let Some(item) = cons.try_pop() {
            if newest.replace(item).is_some() {
                self.shared.dropped.fetch_add(1, Ordering::AcqRel);
            }
        }
        if newest.is_some() {
            self.shared.taken.fetch_add(1, Ordering::AcqRel);
        }
        newest
    }

    /// Every waiting item, oldest first.
    pub fn drain(&self) -> Vec<T> {
        let mut cons = self.shared.cons();
        let items: Vec<T> = std::iter::from_fn(|| cons.try_pop()).collect();
        self.shared
            .taken
            .fetch_add(items.len() as u64, Ordering::AcqRel);
        items
    }

    /// The oldest item, if any (for lossless delivery).
    pub fn take_oldest(&self) -> Option<T> {
        let item = self.shared.cons().try_pop();
        if item.is_some() {
            self.shared.taken.fetch_add(1, Ordering::AcqRel);
        }
        item
    }

    /// Waits up to `timeout` for an item and returns the newest one.
    pub fn recv_newest(&self, timeout: Duration) -> Recv<T> {
        self.recv_with(timeout, Self::take_newest)
    }

    /// Waits up to `timeout` for an item and returns the oldest one.
    pub fn recv_oldest(&self, timeout: Duration) -> Recv<T> {
        self.recv_with(timeout, Self::take_oldest)
    }

    fn recv_with(&self, timeout: Duration, take: impl Fn(&Self) -> Option<T>) -> Recv<T> {
        let _ = self
            .shared
            .consumer_thread
            .get_or_init(std::thread::current);
        let deadline = std::time::Instant::now() + timeout;
        loop {
            // Read `closed` before looking: an item pushed before the close is never missed.
            let closed = self.shared.closed.load(Ordering::Acquire);
            if let Some(item) = take(self) {
                return Recv::Item(item);
            }
            if closed {
                return Recv::Closed;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Recv::Empty;
            }
            std::thread::park_timeout(deadline - now);
        }
    }

    /// Whether an item is waiting.
    pub fn has_waiting(&self) -> bool {
        !self.shared.cons().is_empty()
    }

    /// Whether the sender is gone and nothing is left.
    pub fn is_finished(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire) && self.shared.cons().is_empty()
    }

    /// Counters so far.
    pub fn stats(&self) -> HandoffStats {
        self.shared.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_wins_and_skipped_items_are_counted() {
        let (mut tx, rx) = handoff(4);
        for i in 0..3 {
            tx.push(i);
        }
        assert_eq!(rx.take_newest(), Some(2));
        assert_eq!(rx.take_newest(), None);
        assert_eq!(
            rx.stats(),
            HandoffStats {
                pushed: 3,
                taken: 1,
                dropped: 2
            }
        );
    }

    #[test]
    fn a_full_ring_evicts_the_oldest() {
        let (mut tx, rx) = handoff(2);
        assert!(!tx.push(1));
        assert!(!tx.push(2));
        assert!(tx.push(3));
        assert!(tx.push(4));
        assert_eq!(rx.drain(), vec![3, 4]);
        let stats = rx.stats();
        assert_eq!(stats.dropped, 2);
        assert_eq!(stats.pushed, stats.taken + stats.dropped);
    }

    #[test]
    fn close_is_seen_after_the_last_item() {
        let (mut tx, rx) = handoff(2);
        tx.push(7);
        drop(tx);
        assert_eq!(rx.recv_newest(Duration::ZERO), Recv::Item(7));
        assert_eq!(rx.recv_newest(Duration::ZERO), Recv::Closed);
        assert!(rx.is_finished());
    }

    #[test]
    fn empty_ring_times_out() {
        let (_tx, rx) = handoff::<u8>(1);
        assert_eq!(rx.recv_newest(Duration::from_millis(1)), Recv::Empty);
    }

    #[test]
    fn counts_add_up_across_threads() {
        let (mut tx, rx) = handoff(2);
        let producer = std::thread::spawn(move || {
            for i in 0..10_000u32 {
                tx.push(i);
            }
        });
        let mut last = None;
        let mut received = 0u64;
        loop {
            match rx.recv_newest(Duration::from_millis(50)) {
                Recv::Item(i) => {
                    assert!(last.is_none_or(|l| i > l), "items arrive in order");
                    last = Some(i);
                    received += 1;
                }
                Recv::Empty => {}
                Recv::Closed => break,
            }
        }
        producer.join().unwrap();
        let stats = rx.stats();
        assert_eq!(last, Some(9_999), "the newest item is never lost");
        assert_eq!(stats.taken, received);
        assert_eq!(stats.pushed, 10_000);
        assert_eq!(stats.pushed, stats.taken + stats.dropped);
    }

    #[test]
    fn lossless_delivery_waits_and_keeps_order() {
        let (mut tx, rx) = handoff::<u32>(2);
        let producer = std::thread::spawn(move || {
            for i in 0..50 {
                assert!(tx.push_waiting(i, || false));
            }
        });
        let mut got = Vec::new();
        loop {
            match rx.recv_oldest(Duration::from_millis(200)) {
                Recv::Item(i) => got.push(i),
                Recv::Empty => continue,
                Recv::Closed => break,
            }
        }
        producer.join().unwrap();
        assert_eq!(got, (0..50).collect::<Vec<_>>());
        assert_eq!(rx.stats().dropped, 0);
    }

    #[test]
    fn lossless_push_gives_up_when_told() {
        let (mut tx, _rx) = handoff::<u32>(1);
        assert!(tx.push_waiting(1, || true));
        assert!(!tx.push_waiting(2, || true));
    }
}

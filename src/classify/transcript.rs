//! The rolling transcript of recognised signs, newest first, with no repeat
//! while a sign is held.

use std::collections::VecDeque;
use std::time::Duration;

use super::smoothing::Decision;

/// Signs kept by default.
pub const DEFAULT_TRANSCRIPT_LEN: usize = 50;

/// One recognised sign.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Index of the class in the model's labels.
    pub index: usize,
    /// The class label.
    pub label: String,
    /// Probability of the decision that recorded it.
    pub probability: f32,
    /// When it was recognised (timestamp of the frame, CLOCK_MONOTONIC).
    pub at: Duration,
}

/// The last `max_len` recognised signs.
#[derive(Clone, Debug)]
pub struct Transcript {
    max_len: usize,
    /// Oldest at the front, newest at the back.
    entries: VecDeque<Entry>,
    /// Set by `release` once the last recorded sign stopped being the decision.
    released: bool,
}

impl Transcript {
    /// An empty transcript keeping at most `max_len` signs (at least one).
    pub fn new(max_len: usize) -> Transcript {
        let max_len = max_len.max(1);
        Transcript {
            max_len,
            entries: VecDeque::with_capacity(max_len),
            released: false,
        }
    }

    /// Records a decision unless it repeats the last sign while still held;
    /// returns whether it was added. Drops the oldest sign when full.
    pub fn record(&mut self, decision: &Decision, label: &str, at: Duration) -> bool {
        let repeat = self
            .entries
            .back()
            .is_some_and(|last| last.index == decision.index);
        if repeat && !self.released {
            return false;
        }
        if self.entries.len() == self.max_len {
            self.entries.pop_front();
        }
        self.entries.push_back(Entry {
            index: decision.index,
            label: label.to_string(),
            probability: decision.probability,
            at,
        });
        self.released = false;
        true
    }

    /// Marks the last sign as released: the current decision changed (to
    /// another class or to none), so the same sign may be recorded again.
    pub fn release(&mut self) {
        self.released = true;
    }

    /// The signs, newest first.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.entries.iter().rev()
    }

    /// The most recent sign.
    pub fn last(&self) -> Option<&Entry> {
        self.entries.back()
    }

    /// Number of signs held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no sign has been recorded (or all were cleared).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Most signs kept.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Forgets every sign.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.released = false;
    }
}

impl Default for Transcript {
    /// A transcript of `DEFAULT_TRANSCRIPT_LEN` signs.
    fn default() -> Self {
        Transcript::new(DEFAULT_TRANSCRIPT_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(index: usize) -> Decision {
        Decision {
            index,
            probability: 0.9,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn labels(t: &Transcript) -> Vec<&str> {
        t.entries().map(|e| e.label.as_str()).collect()
    }

    #[test]
    fn no_repeat_while_a_sign_is_held() {
        let mut t = Transcript::new(10);
        assert!(t.record(&decision(1), "hello", ms(100)));
        assert!(!t.record(&decision(1), "hello", ms(200)));
        assert!(!t.record(&decision(1), "hello", ms(300)));
        assert_eq!(t.len(), 1);
        assert_eq!(t.last().map(|e| e.at), Some(ms(100)));
    }

    #[test]
    fn a_released_sign_may_be_recorded_again() {
        let mut t = Transcript::new(10);
        assert!(t.record(&decision(1), "hello", ms(100)));
        t.release();
        assert!(t.record(&decision(1), "hello", ms(900)));
        // Held again after being recorded.
        assert!(!t.record(&decision(1), "hello", ms(1000)));
        assert_eq!(labels(&t), ["hello", "hello"]);
    }

    #[test]
    fn a_different_sign_is_recorded_and_entries_are_newest_first() {
        let mut t = Transcript::new(10);
        assert!(t.record(&decision(1), "hello", ms(100)));
        assert!(t.record(&decision(2), "thanks", ms(200)));
        assert!(t.record(&decision(1), "hello", ms(300)));
        assert_eq!(labels(&t), ["hello", "thanks", "hello"]);
        let times: Vec<_> = t.entries().map(|e| e.at).collect();
        assert_eq!(times, [ms(300), ms(200), ms(100)]);
    }

    #[test]
    fn oldest_signs_are_dropped_past_max_len() {
        let mut t = Transcript::new(2);
        for (i, label) in ["a", "b", "c"].iter().enumerate() {
            assert!(t.record(&decision(i), label, ms(i as u64)));
        }
        assert_eq!(t.len(), 2);
        assert_eq!(labels(&t), ["c", "b"]);
    }

    #[test]
    fn clear_forgets_everything() {
        let mut t = Transcript::default();
        assert_eq!(t.max_len(), DEFAULT_TRANSCRIPT_LEN);
        t.record(&decision(0), "a", ms(1));
        t.clear();
        assert!(t.is_empty());
        assert!(t.record(&decision(0), "a", ms(2)));
    }

    #[test]
    fn release_before_anything_is_harmless() {
        let mut t = Transcript::new(0);
        t.release();
        assert_eq!(t.max_len(), 1);
        assert!(t.record(&decision(3), "x", ms(5)));
        assert_eq!(t.last().map(|e| e.index), Some(3));
    }
}

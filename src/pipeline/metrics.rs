//! Pipeline metrics: latency histograms (hdrhistogram, microseconds) with
//! p50/p95/p99, frame rates over a sliding window, and the snapshot the UI
//! and the headless output read.

use std::collections::VecDeque;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest latency a histogram tells apart (longer values are clamped).
const MAX_LATENCY_US: u64 = 60_000_000;

/// How far back a frame rate looks.
pub const RATE_WINDOW: Duration = Duration::from_secs(2);

/// Recent end-to-end latencies kept for the sparkline.
pub const RECENT_LATENCIES: usize = 120;

/// p50/p95/p99 of a latency histogram, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Values recorded.
    pub count: u64,
    /// Median, ms.
    pub p50: f64,
    /// 95th percentile, ms.
    pub p95: f64,
    /// 99th percentile, ms.
    pub p99: f64,
}

/// A latency histogram with microsecond resolution.
#[derive(Clone, Debug)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    /// An empty histogram covering 1 µs to 60 s at 3 significant figures.
    pub fn new() -> Latency {
        // Constant, valid bounds: this cannot fail.
        let hist = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
            .expect("1 µs..60 s at 3 significant figures is a valid histogram");
        Latency { hist }
    }

    /// Records one latency (clamped to the histogram's range).
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.hist.saturating_record(us.clamp(1, MAX_LATENCY_US));
    }

    /// p50/p95/p99 so far (zeros when empty).
    pub fn percentiles(&self) -> Percentiles {
        Percentiles {
            count: self.hist.len(),
            p50: self.quantile_ms(0.50),
            p95: self.quantile_ms(0.95),
            p99: self.quantile_ms(0.99),
        }
    }

    /// The `q` quantile (0..=1) in milliseconds (0 when empty).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    /// Mean in milliseconds (0 when empty).
    pub fn mean_ms(&self) -> f64 {
        self.hist.mean() / 1000.0
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }
}

/// Events per second over the last [`RATE_WINDOW`].
#[derive(Clone, Debug, Default)]
pub struct Rate {
    stamps: VecDeque<Duration>,
}

impl Rate {
    /// Counts one event at monotonic time `now`.
    pub fn tick(&mut self, now: Duration) {
        self.stamps.push_back(now);
        self.expire(now);
    }

    /// Events per second at `now`, over the window (or since the first event, if younger).
    pub fn per_second(&mut self, now: Duration) -> f64 {
        self.expire(now);
        let (Some(first), n) = (self.stamps.front(), self.stamps.len()) else {
            return 0.0;
        };
        if n < 2 {
            return 0.0;
        }
        let span = now.saturating_sub(*first).max(Duration::from_millis(1));
        (n - 1) as f64 / span.as_secs_f64()
    }

    fn expire(&mut self, now: Duration) {
        while self
            .stamps
            .front()
            .is_some_and(|&t| now.saturating_sub(t) > RATE_WINDOW)
        {
            self.stamps.pop_front();
        }
    }
}

/// What one stage measured.
#[derive(Clone, Debug, Default)]
pub struct StageMetrics {
    /// Items the stage finished.
    pub processed: u64,
    /// Time spent working on each item.
    pub service: Latency,
    /// Capture timestamp to the end of this stage, per item.
    pub since_capture: Latency,
    /// Items finished per second.
    pub rate: Rate,
}

impl StageMetrics {
    /// Records an item that took `service` to process, captured at `captured`,
    /// finished at `now` (both CLOCK_MONOTONIC).
    pub fn record(&mut self, service: Duration, captured: Duration, now: Duration) {
        self.processed += 1;
        self.service.record(service);
        self.since_capture.record(now.saturating_sub(captured));
        self.rate.tick(now);
    }

    /// A snapshot at `now`.
    pub fn snapshot(&mut self, now: Duration) -> StageSnapshot {
        StageSnapshot {
            processed: self.processed,
            fps: self.rate.per_second(now),
            service: self.service.percentiles(),
            since_capture: self.since_capture.percentiles(),
        }
    }
}

/// A stage's figures at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct StageSnapshot {
    /// Items finished.
    pub processed: u64,
    /// Items per second over the last two seconds.
    pub fps: f64,
    /// Processing time per item, ms.
    pub service: Percentiles,
    /// Capture to the end of this stage, ms.
    pub since_capture: Percentiles,
}

/// Recent values for a sparkline, oldest first.
#[derive(Clone, Debug, Default)]
pub struct Recent {
    values: VecDeque<u64>,
}

impl Recent {
    /// Appends a latency (kept in whole milliseconds), forgetting the oldest past [`RECENT_LATENCIES`].
    pub fn push(&mut self, latency: Duration) {
        if self.values.len() == RECENT_LATENCIES {
            self.values.pop_front();
        }
        self.values
            .push_back(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX));
    }

    /// The values, oldest first.
    pub fn to_vec(&self) -> Vec<u64> {
        self.values.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut lat = Latency::new();
        for v in 1..=100 {
            lat.record(ms(v));
        }
        let p = lat.percentiles();
        assert_eq!(p.count, 100);
        assert!((p.p50 - 50.0).abs() < 0.1, "{p:?}");
        assert!((p.p95 - 95.0).abs() < 0.1, "{p:?}");
        assert!((p.p99 - 99.0).abs() < 0.1, "{p:?}");
    }

    #[test]
    fn empty_and_out_of_range_latencies() {
        let mut lat = Latency::new();
        assert_eq!(lat.percentiles(), Percentiles::default());
        lat.record(Duration::ZERO);
        lat.record(Duration::from_secs(3600));
        let p = lat.percentiles();
        assert_eq!(p.count, 2);
        assert!(p.p99 >= 59_000.0 && p.p99 <= 60_100.0, "{p:?}");
    }

    #[test]
    fn rate_over_the_window() {
        let mut rate = Rate::default();
        assert_eq!(rate.per_second(ms(0)), 0.0);
        for i in 0..=60 {
            rate.tick(ms(1000 + i * 33));
        }
        let fps = rate.per_second(ms(1000 + 60 * 33));
        assert!((fps - 30.3).abs() < 0.5, "{fps}");
        // Ten seconds of silence: the rate falls to zero.
        assert_eq!(rate.per_second(ms(12_000)), 0.0);
    }

    #[test]
    fn stage_records_service_and_capture_latency() {
        let mut stage = StageMetrics::default();
        stage.record(ms(5), ms(100), ms(140));
        stage.record(ms(7), ms(133), ms(173));
        let snap = stage.snapshot(ms(173));
        assert_eq!(snap.processed, 2);
        assert!((snap.service.p99 - 7.0).abs() < 0.01);
        assert!((snap.since_capture.p50 - 40.0).abs() < 0.05);
    }

    #[test]
    fn recent_keeps_the_last_values() {
        let mut recent = Recent::default();
        for v in 0..(RECENT_LATENCIES as u64 + 5) {
            recent.push(ms(v));
        }
        let values = recent.to_vec();
        assert_eq!(values.len(), RECENT_LATENCIES);
        assert_eq!(values[0], 5);
    }
}

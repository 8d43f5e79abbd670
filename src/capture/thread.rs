//! The capture thread: runs a [`Source`] on its own thread and keeps only the
//! newest frame in a one-slot mailbox, so the pipeline never works on a stale
//! frame; frames replaced before the consumer took them are counted.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{CaptureError, Frame, Source, SourceInfo, SourceStats};

/// What a receive returned.
#[derive(Debug)]
pub enum Received {
    /// The newest frame.
    Frame(Frame),
    /// No new frame within the timeout.
    Timeout,
    /// The source ended (end of a replay, or the thread was stopped).
    End,
}

/// Counters of a capture thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Frames the source delivered to the thread.
    pub captured: u64,
    /// Frames handed to the consumer.
    pub delivered: u64,
    /// Frames overwritten by a newer one before the consumer took them.
    pub replaced: u64,
    /// The source's own counters (driver drops, corrupt frames, reconnects).
    pub source: SourceStats,
}

/// Where the source stands.
enum State {
    Running,
    Ended,
    Failed(CaptureError),
}

struct Mailbox {
    frame: Option<Frame>,
    state: State,
    stats: CaptureStats,
}

struct Shared {
    mailbox: Mutex<Mailbox>,
    ready: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Mailbox> {
        self.mailbox.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A source running on its own thread; the consumer always gets the newest frame.
pub struct CaptureThread {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
    info: SourceInfo,
}

impl CaptureThread {
    /// Starts capturing from `source` on a new thread.
    pub fn spawn(mut source: Box<dyn Source + Send>) -> io::Result<CaptureThread> {
        let info = source.info();
        let shared = Arc::new(Shared {
            mailbox: Mutex::new(Mailbox {
                frame: None,
                state: State::Running,
                stats: CaptureStats::default(),
            }),
            ready: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let handle = std::thread::Builder::new().name("capture".into()).spawn({
            let shared = Arc::clone(&shared);
            move || capture_loop(source.as_mut(), &shared)
        })?;
        Ok(CaptureThread {
            shared,
            handle: Some(handle),
            info,
        })
    }

    /// The source's description, taken when the thread started.
    pub fn info(&self) -> &SourceInfo {
        &self.info
    }

    /// Waits up to `timeout` for a frame newer than the last one received.
    ///
    /// After the last frame, a source error is returned once, then `End`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Received, CaptureError> {
        let deadline = Instant::now() + timeout;
        let mut mailbox = self.shared.lock();
        loop {
            if let Some(frame) = mailbox.frame.take() {
                mailbox.stats.delivered += 1;
                return Ok(Received::Frame(frame));
            }
            match std::mem::replace(&mut mailbox.state, State::Ended) {
                State::Failed(err) => return Err(err),
                State::Ended => return Ok(Received::End),
                State::Running => mailbox.state = State::Running,
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Received::Timeout);
            }
            mailbox = self
                .shared
                .ready
                .wait_timeout(mailbox, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Blocks for the next newest frame; `None` at the end of the input.
    pub fn recv(&self) -> Result<Option<Frame>, CaptureError> {
        loop {
            match self.recv_timeout(Duration::from_secs(3600))? {
                Received::Frame(frame) => return Ok(Some(frame)),
                Received::End => return Ok(None),
                Received::Timeout => {}
            }
        }
    }

    /// The newest frame if one is waiting, without blocking.
    pub fn try_recv(&self) -> Result<Received, CaptureError> {
        self.recv_timeout(Duration::ZERO)
    }

    /// Counters so far.
    pub fn stats(&self) -> CaptureStats {
        self.shared.lock().stats
    }

    /// Stops the thread (after the frame it is waiting for) and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take()
            && handle.join().is_err()
        {
            tracing::error!("the capture thread panicked");
        }
    }
}

impl Drop for CaptureThread {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Reads frames until the source ends, fails, or a stop is asked for.
fn capture_loop(source: &mut (dyn Source + Send), shared: &Shared) {
    while !shared.stop.load(Ordering::Relaxed) {
        let result = source.next_frame();
        let mut mailbox = shared.lock();
        mailbox.stats.source = source.stats();
        let running = match result {
            Ok(Some(frame)) => {
                mailbox.stats.captured += 1;
                if mailbox.frame.replace(frame).is_some() {
                    mailbox.stats.replaced += 1;
                }
                true
            }
            Ok(None) => {
                mailbox.state = State::Ended;
                false
            }
            Err(err) => {
                tracing::error!(%err, "capture failed");
                mailbox.state = State::Failed(err);
                false
            }
        };
        drop(mailbox);
        shared.ready.notify_all();
        if !running {
            return;
        }
    }
    shared.lock().state = State::Ended;
    shared.ready.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{Replay, ReplayConfig};

    /// A source that yields `n` tiny frames, `gap` apart, then ends or fails.
    struct Ticker {
        left: u64,
        gap: Duration,
        sequence: u64,
        fail_at_end: bool,
    }

    impl Source for Ticker {
        fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
            if self.left == 0 {
                return if self.fail_at_end {
                    Err(CaptureError::InvalidOption("ticker broke".into()))
                } else {
                    Ok(None)
                };
            }
            std::thread::sleep(self.gap);
            self.left -= 1;
            self.sequence += 1;
            Ok(Some(Frame {
                image: image::RgbImage::new(2, 2),
                sequence: self.sequence,
                timestamp: crate::capture::monotonic_now(),
            }))
        }

        fn info(&self) -> SourceInfo {
            SourceInfo {
                description: "ticker".into(),
                pixel_format: "RGB".into(),
                width: 2,
                height: 2,
                fps: None,
            }
        }
    }

    fn ticker(left: u64, gap_ms: u64, fail_at_end: bool) -> Box<dyn Source + Send> {
        Box::new(Ticker {
            left,
            gap: Duration::from_millis(gap_ms),
            sequence: 0,
            fail_at_end,
        })
    }

    #[test]
    fn a_slow_consumer_gets_the_newest_frame_and_replaced_ones_are_counted() {
        let thread = CaptureThread::spawn(ticker(20, 1, false)).unwrap();
        // Let the source run to its end before taking anything.
        std::thread::sleep(Duration::from_millis(300));
        let Received::Frame(frame) = thread.try_recv().unwrap() else {
            panic!("expected a frame")
        };
        assert_eq!(frame.sequence, 20, "not the newest frame");
        assert!(matches!(thread.try_recv().unwrap(), Received::End));
        let stats = thread.stats();
        assert_eq!(
            (stats.captured, stats.delivered, stats.replaced),
            (20, 1, 19)
        );
    }

    #[test]
    fn frames_arrive_in_order_and_the_error_comes_after_the_last_frame() {
        let thread = CaptureThread::spawn(ticker(5, 20, true)).unwrap();
        let mut seen = Vec::new();
        let err = loop {
            match thread.recv() {
                Ok(Some(frame)) => seen.push(frame.sequence),
                Ok(None) => panic!("ended without the error"),
                Err(err) => break err,
            }
        };
        assert!(err.to_string().contains("ticker broke"));
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        assert_eq!(seen.last(), Some(&5));
        assert!(thread.recv().unwrap().is_none());
    }

    #[test]
    fn timeout_when_nothing_new_and_stop_joins() {
        let thread = CaptureThread::spawn(ticker(1000, 50, false)).unwrap();
        assert!(matches!(
            thread.recv_timeout(Duration::from_millis(1)).unwrap(),
            Received::Timeout
        ));
        assert!(thread.recv().unwrap().is_some());
        let started = Instant::now();
        thread.stop();
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn replay_through_the_thread_delivers_the_gif() {
        let gif = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/media/cow_correct.gif"
        );
        let config = ReplayConfig {
            max_speed: true,
            ..ReplayConfig::new(gif)
        };
        let thread = CaptureThread::spawn(Box::new(Replay::open(&config).unwrap())).unwrap();
        let mut last = None;
        while let Some(frame) = thread.recv().unwrap() {
            assert!(last.is_none_or(|l| frame.sequence > l));
            last = Some(frame.sequence);
        }
        let stats = thread.stats();
        assert!(stats.captured > 1);
        assert_eq!(stats.captured, stats.delivered + stats.replaced);
    }
}

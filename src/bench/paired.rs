//! `signtop bench --paired`: one frame at a time against pipelined, side by
//! side in one process: the clip's passes alternate between the two (the
//! order swapped each pair), so the host's load, which moves a run's mean by
//! a quarter from one minute to the next, weighs on both alike.

use std::fmt;
use std::time::{Duration, Instant};

use anyhow::Context;
use image::RgbImage;

use crate::landmarks::holistic::{Holistic, HolisticOptions};
use crate::landmarks::keypoints::Layout;
use crate::landmarks::models::ModelSource;

/// What `--paired` measured: each pair's time per frame, both ways.
pub struct PairedReport {
    layout: Layout,
    frames_per_pass: usize,
    /// (one at a time, pipelined), per frame.
    pairs: Vec<(Duration, Duration)>,
}

impl PairedReport {
    /// Pipelined time over one-at-a-time time, pair by pair, in pair order.
    pub fn ratios(&self) -> Vec<f64> {
        self.pairs
            .iter()
            .map(|(one, piped)| piped.as_secs_f64() / one.as_secs_f64().max(f64::MIN_POSITIVE))
            .collect()
    }
}

impl fmt::Display for PairedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ratios = self.ratios();
        ratios.sort_by(f64::total_cmp);
        let n = ratios.len();
        let mean_ms = |pick: fn(&(Duration, Duration)) -> Duration| {
            self.pairs
                .iter()
                .map(|p| pick(p).as_secs_f64())
                .sum::<f64>()
                * 1e3
                / n.max(1) as f64
        };
        writeln!(
            f,
            "layout {}, {n} pairs of passes over {} frames, order swapped each pair",
            self.layout, self.frames_per_pass
        )?;
        writeln!(
            f,
            "one frame at a time: {:.2} ms a frame (mean of passes); pipelined: {:.2} ms",
            mean_ms(|p| p.0),
            mean_ms(|p| p.1)
        )?;
        if let (Some(low), Some(high)) = (ratios.first(), ratios.last()) {
            writeln!(
                f,
                "pipelined / one at a time: median {:.3}x the time, range {low:.3}-{high:.3}, \
                 pipelined faster in {} of {n}",
                ratios[(n - 1) / 2],
                ratios.iter().filter(|r| **r < 1.0).count()
            )?;
        }
        Ok(())
    }
}

/// Times `pairs` pairs of passes over `frames`, one pass one frame at a time,
/// the other pipelined, each from a fresh start (tracking reset).
pub fn bench_paired(
    frames: &[RgbImage],
    models: &ModelSource,
    layout: Layout,
    pairs: usize,
) -> anyhow::Result<PairedReport> {
    anyhow::ensure!(!frames.is_empty(), "no frames to time");
    let mut holistic = Holistic::new(&HolisticOptions {
        models: models.clone(),
        layout,
    })
    .context("loading the landmark models")?;
    // Warm-up, untimed: both paths' first runs of every model.
    time_pass(&mut holistic, frames, false)?;
    time_pass(&mut holistic, frames, true)?;
    let mut timed = Vec::with_capacity(pairs);
    for pair in 0..pairs {
        let (one, piped) = if pair % 2 == 0 {
            let one = time_pass(&mut holistic, frames, false)?;
            (one, time_pass(&mut holistic, frames, true)?)
        } else {
            let piped = time_pass(&mut holistic, frames, true)?;
            (time_pass(&mut holistic, frames, false)?, piped)
        };
        timed.push((one, piped));
    }
    Ok(PairedReport {
        layout,
        frames_per_pass: frames.len(),
        pairs: timed,
    })
}

/// One pass over `frames` from a fresh start; the time per frame.
fn time_pass(
    holistic: &mut Holistic,
    frames: &[RgbImage],
    pipelined: bool,
) -> anyhow::Result<Duration> {
    holistic.reset();
    if pipelined {
        // `push` takes its frames: copied before the clock starts so that
        // the copies are not charged to the pipelined path.
        let owned = frames.to_vec();
        let started = Instant::now();
        for frame in owned {
            holistic.push(frame)?;
        }
        holistic.flush()?;
        return Ok(started.elapsed() / frames.len() as u32);
    }
    let started = Instant::now();
    for frame in frames {
        holistic.process(frame)?;
    }
    Ok(started.elapsed() / frames.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn pairs_time_both_paths_and_report_the_ratio() {
        let astronaut = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/frames/astronaut"
        ));
        let frames = super::super::decoded_frames(astronaut).unwrap();
        let report =
            bench_paired(&frames[..4], &ModelSource::BuiltIn, Layout::PoseHands, 3).unwrap();
        let ratios = report.ratios();
        assert_eq!(ratios.len(), 3);
        assert!(
            ratios.iter().all(|r| r.is_finite() && *r > 0.0),
            "{ratios:?}"
        );
        let text = report.to_string();
        assert!(
            text.contains("layout 258, 3 pairs of passes over 4 frames"),
            "{text}"
        );
        assert!(
            text.contains("pipelined / one at a time: median "),
            "{text}"
        );
        assert!(text.contains(" of 3\n"), "{text}");
    }

    #[test]
    fn no_frames_is_an_error() {
        let err = bench_paired(&[], &ModelSource::BuiltIn, Layout::PoseHands, 1)
            .err()
            .unwrap();
        assert!(err.to_string().contains("no frames"), "{err}");
    }
}

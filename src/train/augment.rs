//! Training windows drawn from recordings, changed the ways sessions differ:
//! pace, where the window starts, hands (or the pose) lost for runs of
//! frames, framing (scale, aspect, shift, a small rotation) and mirroring.
//!
//! Everything here works on raw keypoints in the dataset's layout, before the
//! model's preprocessing, so an augmented window is one the live pipeline
//! could have produced.

use ndarray::Array2;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::landmarks::keypoints::{Layout, mirror_features};

/// Which changes are drawn, and how strong.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AugmentConfig {
    /// Pace range: a window's frames step through the recording at this many
    /// recorded frames per window frame (log-uniform); 1..1 keeps the pace.
    pub pace: (f32, f32),
    /// Mirror half the windows (x -> 1-x, hands and sides swapped).
    pub mirror: bool,
    /// Probability that a hand loses runs of frames in a window.
    pub hand_loss: f32,
    /// Largest share of a window's frames a hand loses when it does.
    pub hand_loss_share: f32,
    /// Probability that the pose (and so the whole frame) is lost for runs of frames.
    pub pose_loss: f32,
    /// Framing: largest rotation (degrees), relative scale change, relative
    /// aspect change and shift (normalised image units); zeros turn it off.
    pub rotation_deg: f32,
    /// See `rotation_deg`.
    pub scale: f32,
    /// See `rotation_deg`.
    pub aspect: f32,
    /// See `rotation_deg`.
    pub shift: f32,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            pace: (1.0 / 3.0, 3.0),
            mirror: true,
            hand_loss: 0.5,
            hand_loss_share: 0.5,
            pose_loss: 0.1,
            rotation_deg: 10.0,
            scale: 0.15,
            aspect: 0.25,
            shift: 0.08,
        }
    }
}

impl AugmentConfig {
    /// No change at all: windows as recorded (for evaluation).
    pub fn none() -> AugmentConfig {
        AugmentConfig {
            pace: (1.0, 1.0),
            mirror: false,
            hand_loss: 0.0,
            hand_loss_share: 0.0,
            pose_loss: 0.0,
            rotation_deg: 0.0,
            scale: 0.0,
            aspect: 0.0,
            shift: 0.0,
        }
    }
}

/// Every window of `len` frames of `recording` in order (one per start frame):
/// row-major len x features each. Empty when the recording is shorter.
pub fn all_windows(recording: &Array2<f32>, len: usize) -> Vec<Vec<f32>> {
    let frames = recording.nrows();
    if frames < len {
        return Vec::new();
    }
    (0..=frames - len)
        .map(|start| frame_rows(recording, &(start..start + len).collect::<Vec<_>>()))
        .collect()
}

/// One augmented window of `len` frames drawn from `recording`.
pub fn draw_window(
    recording: &Array2<f32>,
    layout: Layout,
    len: usize,
    config: &AugmentConfig,
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    let picks = paced_frames(recording.nrows(), len, config.pace, rng);
    let mut window = frame_rows(recording, &picks);
    let features = layout.features();
    if config.mirror && rng.random_bool(0.5) {
        for frame in window.chunks_exact_mut(features) {
            if let Ok(flipped) = mirror_features(layout, frame) {
                frame.copy_from_slice(&flipped);
            }
        }
    }
    reframe(&mut window, layout, config, rng);
    for hand in [layout.left_hand(), layout.right_hand()] {
        if rng.random_bool(f64::from(config.hand_loss.clamp(0.0, 1.0))) {
            let share = rng.random_range(0.0..=config.hand_loss_share.max(0.0));
            lose_runs(&mut window, features, hand, share, rng);
        }
    }
    if rng.random_bool(f64::from(config.pose_loss.clamp(0.0, 1.0))) {
        let share = rng.random_range(0.0..=0.2);
        lose_runs(&mut window, features, 0..features, share, rng);
    }
    window
}

/// Which recorded frame each of `len` window frames shows, at a pace drawn
/// from `pace`. A paced-up sign shorter than the window is padded with its
/// first and last frames held still; a slowed one is cut at a random start.
fn paced_frames(frames: usize, len: usize, pace: (f32, f32), rng: &mut ChaCha8Rng) -> Vec<usize> {
    let (lo, hi) = (pace.0.min(pace.1).max(1e-3), pace.0.max(pace.1).max(1e-3));
    let step = if hi > lo {
        rng.random_range(lo.ln()..=hi.ln()).exp()
    } else {
        lo
    };
    let last = frames.saturating_sub(1) as f32;
    let covered = step * len.saturating_sub(1) as f32;
    let room = last - covered;
    let start = if room >= 0.0 {
        rng.random_range(0.0..=room)
    } else {
        rng.random_range(room..=0.0)
    };
    (0..len)
        .map(|i| (start + step * i as f32).round().clamp(0.0, last) as usize)
        .collect()
}

/// The rows `picks` of `recording`, row-major.
fn frame_rows(recording: &Array2<f32>, picks: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(picks.len() * recording.ncols());
    for &p in picks {
        out.extend(recording.row(p).iter().copied());
    }
    out
}

/// One random framing change for the whole window, applied to every found
/// point's x, y (about the image centre); hand and face depth scale with it.
fn reframe(window: &mut [f32], layout: Layout, config: &AugmentConfig, rng: &mut ChaCha8Rng) {
    let mut spread = |limit: f32| {
        if limit > 0.0 {
            rng.random_range(-limit..=limit)
        } else {
            0.0
        }
    };
    let angle = spread(config.rotation_deg).to_radians();
    let scale = 1.0 + spread(config.scale);
    let aspect = 1.0 + spread(config.aspect);
    let (dx, dy) = (spread(config.shift), spread(config.shift));
    if angle == 0.0 && scale == 1.0 && aspect == 1.0 && dx == 0.0 && dy == 0.0 {
        return;
    }
    let (sin, cos) = angle.sin_cos();
    let move_point = |p: &mut [f32]| {
        let (x, y) = (p[0] - 0.5, p[1] - 0.5);
        p[0] = 0.5 + dx + scale * (cos * x - sin * y);
        p[1] = 0.5 + dy + scale * aspect * (sin * x + cos * y);
        p[2] *= scale;
    };
    let mut parts = vec![
        (layout.pose(), 4),
        (layout.left_hand(), 3),
        (layout.right_hand(), 3),
    ];
    if let Some(face) = layout.face() {
        parts.push((face, 3));
    }
    for frame in window.chunks_exact_mut(layout.features()) {
        for (range, stride) in &parts {
            let part = &mut frame[range.clone()];
            if part.iter().all(|v| *v == 0.0) {
                continue;
            }
            part.chunks_exact_mut(*stride).for_each(move_point);
        }
    }
}

/// Zeroes `columns` in runs of 1-6 frames until about `share` of the frames are lost.
fn lose_runs(
    window: &mut [f32],
    features: usize,
    columns: std::ops::Range<usize>,
    share: f32,
    rng: &mut ChaCha8Rng,
) {
    let frames = window.len() / features;
    let target = (share * frames as f32).round() as usize;
    let mut lost = vec![false; frames];
    let mut count = 0;
    let mut tries = 0;
    while count < target && tries < 4 * frames {
        tries += 1;
        let run = rng.random_range(1..=6usize);
        let start = rng.random_range(0..frames);
        for slot in lost.iter_mut().skip(start).take(run) {
            if !*slot {
                *slot = true;
                count += 1;
            }
        }
    }
    for (f, frame) in window.chunks_exact_mut(features).enumerate() {
        if lost[f] {
            frame[columns.clone()].fill(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn ramp(frames: usize, layout: Layout) -> Array2<f32> {
        Array2::from_shape_fn((frames, layout.features()), |(f, c)| {
            0.1 + 0.001 * f as f32 + if c < 4 { 0.0 } else { 0.0001 * c as f32 }
        })
    }

    #[test]
    fn pace_holds_the_ends_still_when_sped_up_and_cuts_when_slowed() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..50 {
            let fast = paced_frames(30, 30, (3.0, 3.0), &mut rng);
            assert!(fast.windows(2).all(|w| w[0] <= w[1]));
            assert!(fast.contains(&0) && fast.contains(&29), "{fast:?}");
            let slow = paced_frames(30, 30, (0.5, 0.5), &mut rng);
            let spread = slow[29] - slow[0];
            assert!((14..=15).contains(&spread), "{slow:?}");
            let same = paced_frames(40, 30, (1.0, 1.0), &mut rng);
            assert_eq!(same[29] - same[0], 29);
        }
    }

    #[test]
    fn without_changes_a_window_is_the_recording_itself() {
        let layout = Layout::PoseHands;
        let recording = ramp(30, layout);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let window = draw_window(&recording, layout, 30, &AugmentConfig::none(), &mut rng);
        assert_eq!(window, recording.iter().copied().collect::<Vec<_>>());
        assert_eq!(all_windows(&ramp(32, layout), 30).len(), 3);
        assert!(all_windows(&ramp(29, layout), 30).is_empty());
    }

    #[test]
    fn lost_runs_zero_whole_parts_and_framing_keeps_missing_parts_zero() {
        let layout = Layout::PoseHands;
        let mut recording = ramp(30, layout);
        recording
            .slice_mut(ndarray::s![.., layout.left_hand()])
            .fill(0.0);
        let config = AugmentConfig {
            hand_loss: 1.0,
            hand_loss_share: 0.5,
            mirror: false,
            ..AugmentConfig::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let window = draw_window(&recording, layout, 30, &config, &mut rng);
        let frames: Vec<&[f32]> = window.chunks(layout.features()).collect();
        assert!(
            frames
                .iter()
                .all(|f| f[layout.left_hand()].iter().all(|v| *v == 0.0))
        );
        let lost = frames
            .iter()
            .filter(|f| f[layout.right_hand()].iter().all(|v| *v == 0.0))
            .count();
        assert!(lost < 30, "{lost}");
        for f in &frames {
            let hand = &f[layout.right_hand()];
            assert!(hand.iter().all(|v| *v == 0.0) || hand.iter().all(|v| *v != 0.0));
        }
    }
}

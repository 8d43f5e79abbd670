//! `signtop inspect`: what a keypoint .npy holds, at a glance.

use std::path::PathBuf;

use anyhow::Context;
use ndarray::{ArrayD, Axis, Ix2};

use crate::landmarks::keypoints::{Keypoints, Layout, Parts};

/// Arguments of `signtop inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// A float32 .npy of shape (frames, features) or (sequences, frames, features).
    pub path: PathBuf,
}

/// How often each part was found over a set of frames.
#[derive(Debug, Default, PartialEq)]
pub struct PartRates {
    pub frames: usize,
    pub pose: usize,
    pub left_hand: usize,
    pub right_hand: usize,
    pub face: usize,
}

impl PartRates {
    /// Counts one frame's parts.
    pub fn add(&mut self, parts: Parts) {
        self.frames += 1;
        self.pose += usize::from(parts.pose);
        self.left_hand += usize::from(parts.left_hand);
        self.right_hand += usize::from(parts.right_hand);
        self.face += usize::from(parts.face);
    }

    fn percent(&self, n: usize) -> f64 {
        if self.frames == 0 {
            0.0
        } else {
            100.0 * n as f64 / self.frames as f64
        }
    }

    /// One line: frames and % of frames with each part.
    pub fn summary(&self, layout: Layout) -> String {
        let mut line = format!(
            "frames={} pose={:.0}% left_hand={:.0}% right_hand={:.0}%",
            self.frames,
            self.percent(self.pose),
            self.percent(self.left_hand),
            self.percent(self.right_hand)
        );
        if layout.has_face() {
            line.push_str(&format!(" face={:.0}%", self.percent(self.face)));
        }
        line
    }
}

/// Counts parts over every frame of an array whose last axis is the feature axis.
pub fn part_rates(values: &ArrayD<f32>) -> anyhow::Result<(Layout, PartRates)> {
    let features = *values
        .shape()
        .last()
        .context("the array has no axes: expected (frames, features)")?;
    let layout = Layout::from_features(features)?;
    let frames = values
        .view()
        .into_shape_with_order((values.len() / features.max(1), features))
        .context("flattening to (frames, features)")?
        .into_dimensionality::<Ix2>()?;
    let mut rates = PartRates::default();
    for row in frames.axis_iter(Axis(0)) {
        let row: Vec<f32> = row.to_vec();
        rates.add(Keypoints::from_features(layout, &row)?.parts());
    }
    Ok((layout, rates))
}

/// Runs `signtop inspect`.
pub fn run(args: &InspectArgs) -> anyhow::Result<()> {
    let values: ArrayD<f32> = ndarray_npy::read_npy(&args.path)
        .with_context(|| format!("reading {} as a float32 .npy", args.path.display()))?;
    let (layout, rates) = part_rates(&values)
        .with_context(|| format!("reading keypoints from {}", args.path.display()))?;
    println!(
        "{}: shape={:?} layout={} {}",
        args.path.display(),
        values.shape(),
        layout,
        rates.summary(layout)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parts_over_sequences() {
        let mut a = ArrayD::<f32>::zeros(vec![2, 3, 258]);
        a[[0, 0, 0]] = 0.5; // pose in one frame
        a[[1, 2, 200]] = 0.5; // right hand in one frame
        let (layout, rates) = part_rates(&a).unwrap();
        assert_eq!(layout, Layout::PoseHands);
        assert_eq!(
            rates,
            PartRates {
                frames: 6,
                pose: 1,
                left_hand: 0,
                right_hand: 1,
                face: 0
            }
        );
        assert_eq!(
            rates.summary(layout),
            "frames=6 pose=17% left_hand=0% right_hand=17%"
        );
    }

    #[test]
    fn rejects_unknown_feature_counts() {
        let a = ArrayD::<f32>::zeros(vec![4, 100]);
        assert!(part_rates(&a).unwrap_err().to_string().contains("100"));
    }
}

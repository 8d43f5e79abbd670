//! Parity with a reference: how closely two keypoint arrays of the same frames
//! agree, per part (detected or not, and mean |dx|, |dy| where both detect it).

use std::fmt::Write as _;
use std::ops::Range;
use std::path::PathBuf;

use anyhow::Context;
use ndarray::{Array2, ArrayView2};

use crate::landmarks::keypoints::Layout;

/// The parity targets of the landmark pipeline.
pub const MAX_MEAN_ABS_DIFF: f64 = 0.01;
/// Fraction of frames on which "found / not found" must agree.
pub const MIN_DETECTION_AGREEMENT: f64 = 0.95;

/// Errors comparing keypoint arrays.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParityError {
    /// The two arrays do not describe the same frames in the same layout.
    #[error("shapes differ: ours {ours:?}, reference {reference:?}")]
    ShapeMismatch {
        ours: Vec<usize>,
        reference: Vec<usize>,
    },
    /// Not a (frames, features) array of a known layout.
    #[error(transparent)]
    Layout(#[from] crate::landmarks::keypoints::LayoutError),
}

/// How one part compares over all frames.
#[derive(Clone, Debug, PartialEq)]
pub struct PartParity {
    /// Part name: pose, left_hand, right_hand or face.
    pub part: &'static str,
    /// Frames compared.
    pub frames: usize,
    /// Frames where ours found the part.
    pub ours_found: usize,
    /// Frames where the reference found the part.
    pub reference_found: usize,
    /// Frames where both found it (the coordinates are compared on these).
    pub both_found: usize,
    /// Frames where found/not found agree.
    pub agree: usize,
    /// Mean |dx| of normalised x over landmarks of frames where both found it.
    pub mean_dx: f64,
    /// Mean |dy| likewise.
    pub mean_dy: f64,
}

impl PartParity {
    /// Fraction of frames on which detection agrees.
    pub fn agreement(&self) -> f64 {
        if self.frames == 0 {
            1.0
        } else {
            self.agree as f64 / self.frames as f64
        }
    }

    /// Whether the part meets the parity targets.
    pub fn meets_targets(&self) -> bool {
        self.agreement() >= MIN_DETECTION_AGREEMENT
            && self.mean_dx <= MAX_MEAN_ABS_DIFF
            && self.mean_dy <= MAX_MEAN_ABS_DIFF
    }
}

fn parts(layout: Layout) -> Vec<(&'static str, Range<usize>, usize)> {
    let mut parts = vec![("pose", layout.pose(), 4)];
    if let Some(face) = layout.face() {
        parts.push(("face", face, 3));
    }
    parts.push(("left_hand", layout.left_hand(), 3));
    parts.push(("right_hand", layout.right_hand(), 3));
    parts
}

/// Compares our keypoints with a reference's, frame by frame.
pub fn compare(
    ours: ArrayView2<f32>,
    reference: ArrayView2<f32>,
) -> Result<Vec<PartParity>, ParityError> {
    if ours.shape() != reference.shape() {
        return Err(ParityError::ShapeMismatch {
            ours: ours.shape().to_vec(),
            reference: reference.shape().to_vec(),
        });
    }
    let layout = Layout::from_features(ours.ncols())?;
    Ok(parts(layout)
        .into_iter()
        .map(|(name, cols, stride)| compare_part(name, &ours, &reference, cols, stride))
        .collect())
}

fn compare_part(
    part: &'static str,
    ours: &ArrayView2<f32>,
    reference: &ArrayView2<f32>,
    cols: Range<usize>,
    stride: usize,
) -> PartParity {
    let mut p = PartParity {
        part,
        frames: ours.nrows(),
        ours_found: 0,
        reference_found: 0,
        both_found: 0,
        agree: 0,
        mean_dx: 0.0,
        mean_dy: 0.0,
    };
    let (mut sum_dx, mut sum_dy, mut points) = (0.0f64, 0.0f64, 0usize);
    for (a, b) in ours.rows().into_iter().zip(reference.rows()) {
        let (a, b) = (
            a.slice(ndarray::s![cols.clone()]),
            b.slice(ndarray::s![cols.clone()]),
        );
        let found_a = a.iter().any(|v| *v != 0.0);
        let found_b = b.iter().any(|v| *v != 0.0);
        p.ours_found += usize::from(found_a);
        p.reference_found += usize::from(found_b);
        p.agree += usize::from(found_a == found_b);
        if found_a && found_b {
            p.both_found += 1;
            for i in (0..a.len()).step_by(stride) {
                sum_dx += f64::from((a[i] - b[i]).abs());
                sum_dy += f64::from((a[i + 1] - b[i + 1]).abs());
                points += 1;
            }
        }
    }
    if points > 0 {
        p.mean_dx = sum_dx / points as f64;
        p.mean_dy = sum_dy / points as f64;
    }
    p
}

/// A table of the comparison, one row a part.
pub fn report(parity: &[PartParity]) -> String {
    let mut out =
        String::from("part        frames  ours  ref  both  agree%  mean|dx|  mean|dy|  targets\n");
    for p in parity {
        let _ = writeln!(
            out,
            "{:<10} {:>7} {:>5} {:>4} {:>5} {:>7.1} {:>9.4} {:>9.4}  {}",
            p.part,
            p.frames,
            p.ours_found,
            p.reference_found,
            p.both_found,
            100.0 * p.agreement(),
            p.mean_dx,
            p.mean_dy,
            if p.meets_targets() { "met" } else { "MISSED" }
        );
    }
    out
}

/// Arguments of `signtop compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Our keypoints: float32 .npy (frames, 258 or 1662).
    pub ours: PathBuf,
    /// The reference's keypoints for the same frames, same layout.
    pub reference: PathBuf,
}

fn read_keypoints(path: &std::path::Path) -> anyhow::Result<Array2<f32>> {
    ndarray_npy::read_npy(path).with_context(|| {
        format!(
            "reading {} as a float32 (frames, features) .npy",
            path.display()
        )
    })
}

/// Runs `signtop compare`: prints the table; fails if a target is missed.
pub fn run(args: &CompareArgs) -> anyhow::Result<()> {
    let ours = read_keypoints(&args.ours)?;
    let reference = read_keypoints(&args.reference)?;
    let parity = compare(ours.view(), reference.view()).with_context(|| {
        format!(
            "comparing {} with {}",
            args.ours.display(),
            args.reference.display()
        )
    })?;
    print!("{}", report(&parity));
    let missed: Vec<&str> = parity
        .iter()
        .filter(|p| !p.meets_targets())
        .map(|p| p.part)
        .collect();
    anyhow::ensure!(
        missed.is_empty(),
        "parity targets (agreement >= {:.0}%, mean |dx|,|dy| <= {MAX_MEAN_ABS_DIFF}) missed for: {}",
        100.0 * MIN_DETECTION_AGREEMENT,
        missed.join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFERENCE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/media/reference/cow_correct_258.npy"
    );

    #[test]
    fn identical_arrays_agree_fully() {
        let r: Array2<f32> = ndarray_npy::read_npy(REFERENCE).unwrap();
        let parity = compare(r.view(), r.view()).unwrap();
        assert_eq!(parity.len(), 3);
        for p in &parity {
            assert_eq!(p.agree, 47);
            assert_eq!(p.mean_dx, 0.0);
            assert!(p.meets_targets());
        }
        // The shared README: MediaPipe found the right hand in 36% of cow's frames.
        assert_eq!(parity[2].reference_found, 17);
    }

    #[test]
    fn shifts_and_missed_parts_are_measured() {
        let r: Array2<f32> = ndarray_npy::read_npy(REFERENCE).unwrap();
        let mut ours = r.clone();
        let pose = Layout::PoseHands.pose();
        for mut row in ours.rows_mut() {
            for i in pose.clone().step_by(4) {
                row[i] += 0.02; // x shifted by 2% of the width
            }
        }
        // Drop the right hand everywhere: agreement falls to the frames without it.
        ours.slice_mut(ndarray::s![.., 195..258]).fill(0.0);
        let parity = compare(ours.view(), r.view()).unwrap();
        assert!((parity[0].mean_dx - 0.02).abs() < 1e-6);
        assert_eq!(parity[0].mean_dy, 0.0);
        assert!(!parity[0].meets_targets());
        assert_eq!(parity[2].agree, 47 - 17);
        assert!(report(&parity).contains("MISSED"));
    }

    #[test]
    fn different_shapes_are_an_error() {
        let a = Array2::<f32>::zeros((3, 258));
        let b = Array2::<f32>::zeros((4, 258));
        assert!(matches!(
            compare(a.view(), b.view()),
            Err(ParityError::ShapeMismatch { .. })
        ));
    }
}

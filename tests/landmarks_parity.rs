//! Holistic parity against MediaPipe's own keypoints: the committed fixtures
//! (tests/fixtures) and the shared signing clips (../shared/media).
#![allow(clippy::unwrap_used)]

use image::AnimationDecoder;
use image::codecs::gif::GifDecoder;
use ndarray::{Array2, s};
use signtop::keypoint_files::parity::{self, PartParity};
use signtop::landmarks::{Holistic, HolisticOptions, Layout, StageTimings};

const SHARED_MEDIA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/media/");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");

fn gif_frames(path: &str) -> Vec<image::RgbImage> {
    let file = std::fs::File::open(path).unwrap();
    GifDecoder::new(std::io::BufReader::new(file))
        .unwrap()
        .into_frames()
        .collect_frames()
        .unwrap()
        .into_iter()
        .map(|f| image::DynamicImage::ImageRgba8(f.into_buffer()).to_rgb8())
        .collect()
}

fn folder_frames(dir: &str) -> Vec<image::RgbImage> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| image::open(p).unwrap().to_rgb8())
        .collect()
}

fn run(frames: &[image::RgbImage], layout: Layout) -> (Array2<f32>, Vec<StageTimings>) {
    let mut timings = Vec::with_capacity(frames.len());
    let mut holistic = Holistic::new(&HolisticOptions {
        layout,
        ..HolisticOptions::default()
    })
    .unwrap();
    let mut out = Array2::zeros((frames.len(), layout.features()));
    for (i, frame) in frames.iter().enumerate() {
        let kp = holistic.process(frame).unwrap();
        kp.write_features(layout, out.row_mut(i).as_slice_mut().unwrap());
        timings.push(*holistic.last_timings());
    }
    (out, timings)
}

/// Mean |dz| of the face landmarks over frames where both found a face (z is
/// not in the parity table, which compares x and y).
fn face_mean_dz(ours: &Array2<f32>, reference: &Array2<f32>) -> f64 {
    let cols = Layout::PoseFaceHands.face().unwrap();
    let (mut sum, mut n) = (0.0f64, 0usize);
    for (a, b) in ours.rows().into_iter().zip(reference.rows()) {
        let (a, b) = (a.slice(s![cols.clone()]), b.slice(s![cols.clone()]));
        if a.iter().any(|v| *v != 0.0) && b.iter().any(|v| *v != 0.0) {
            for i in (2..a.len()).step_by(3) {
                sum += f64::from((a[i] - b[i]).abs());
                n += 1;
            }
        }
    }
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// A line on the face path: z agreement and time per frame (this build's
/// profile; `signtop bench` is the measure of speed).
fn face_summary(
    ours: &Array2<f32>,
    reference: &Array2<f32>,
    result: &[PartParity],
    timings: &[StageTimings],
) -> String {
    let face = result.iter().find(|p| p.part == "face");
    let face_ms: Vec<f64> = timings
        .iter()
        .filter_map(|t| t.face)
        .map(|d| d.as_secs_f64() * 1e3)
        .collect();
    let total_ms: f64 = timings.iter().map(|t| t.total.as_secs_f64() * 1e3).sum();
    format!(
        "face mean |dx| {:.6} |dy| {:.6} |dz| {:.6}; face path {:.1} ms/frame (max {:.1}), whole frame {:.1} ms/frame\n",
        face.map_or(0.0, |p| p.mean_dx),
        face.map_or(0.0, |p| p.mean_dy),
        face_mean_dz(ours, reference),
        face_ms.iter().sum::<f64>() / face_ms.len().max(1) as f64,
        face_ms.iter().copied().fold(0.0, f64::max),
        total_ms / timings.len().max(1) as f64,
    )
}

fn parity_of(
    name: &str,
    frames: &[image::RgbImage],
    reference: &str,
    layout: Layout,
) -> Vec<PartParity> {
    let reference: Array2<f32> = ndarray_npy::read_npy(reference).unwrap();
    let (ours, timings) = run(frames, layout);
    let result = parity::compare(ours.view(), reference.view()).unwrap();
    let face = if layout.has_face() {
        face_summary(&ours, &reference, &result, &timings)
    } else {
        String::new()
    };
    eprintln!(
        "{name} ({} frames, {layout}):\n{}{face}",
        frames.len(),
        parity::report(&result)
    );
    result
}

fn assert_targets(name: &str, result: &[PartParity]) {
    for p in result {
        assert!(p.meets_targets(), "{name} {}: {p:?}", p.part);
    }
}

/// The shared clips are 347x196 screen recordings whose hands are ~10-20 px
/// across: MediaPipe's own hand presence score sits near its 0.5 threshold in
/// many frames (it finds a hand in one frame and loses it in the next), so a
/// fraction of a pixel of difference upstream flips some of those decisions.
/// Pose meets the targets here too; for hands the coordinates do
/// (where both find the hand) and agreement is guarded at this floor.
/// Measured 2026-11-30: Cow 100% and 97.9%, Butterfly 90% for both hands.
const CLIP_HAND_MIN_AGREEMENT: f64 = 0.85;

#[test]
fn holistic_258_on_the_shared_clips_stays_close_to_mediapipe() {
    let results: Vec<_> = ["cow_correct", "butterfly_inference"]
        .into_iter()
        .map(|name| {
            let frames = gif_frames(&format!("{SHARED_MEDIA}{name}.gif"));
            let reference = format!("{SHARED_MEDIA}reference/{name}_258.npy");
            (
                name,
                parity_of(name, &frames, &reference, Layout::PoseHands),
            )
        })
        .collect();
    for (name, result) in results {
        for p in result {
            let min_agreement = match p.part {
                "pose" => parity::MIN_DETECTION_AGREEMENT,
                _ => CLIP_HAND_MIN_AGREEMENT,
            };
            let close =
                p.mean_dx <= parity::MAX_MEAN_ABS_DIFF && p.mean_dy <= parity::MAX_MEAN_ABS_DIFF;
            assert!(
                close && p.agreement() >= min_agreement,
                "{name} {}: {p:?}",
                p.part
            );
        }
    }
}

#[test]
fn holistic_258_matches_mediapipe_on_the_fixtures() {
    let results: Vec<_> = ["astronaut", "camera"]
        .into_iter()
        .map(|name| {
            let frames = folder_frames(&format!("{FIXTURES}frames/{name}"));
            let reference = format!("{FIXTURES}reference/{name}_258.npy");
            (
                name,
                parity_of(name, &frames, &reference, Layout::PoseHands),
            )
        })
        .collect();
    for (name, result) in results {
        assert_targets(name, &result);
    }
}

/// The face part's row of a 1662 comparison.
fn face_of(result: &[PartParity]) -> &PartParity {
    result.iter().find(|p| p.part == "face").unwrap()
}

/// 1662 on the shared clips: the face meets the targets; the other parts are
/// the 258 test's business (the same code computes them, with the clips' hand
/// agreement floor), so only printed here.
#[test]
fn holistic_1662_face_matches_mediapipe_on_the_shared_clips() {
    let results: Vec<_> = ["cow_correct", "butterfly_inference"]
        .into_iter()
        .map(|name| {
            let frames = gif_frames(&format!("{SHARED_MEDIA}{name}.gif"));
            let reference = format!("{SHARED_MEDIA}reference/{name}_1662.npy");
            (
                name,
                parity_of(name, &frames, &reference, Layout::PoseFaceHands),
            )
        })
        .collect();
    for (name, result) in &results {
        let face = face_of(result);
        assert!(face.meets_targets(), "{name} face: {face:?}");
    }
}

/// 1662 on the fixtures: every part, the face included, meets the targets.
#[test]
fn holistic_1662_matches_mediapipe_on_the_fixtures() {
    let results: Vec<_> = ["astronaut", "camera"]
        .into_iter()
        .map(|name| {
            let frames = folder_frames(&format!("{FIXTURES}frames/{name}"));
            let reference = format!("{FIXTURES}reference/{name}_1662.npy");
            (
                name,
                parity_of(name, &frames, &reference, Layout::PoseFaceHands),
            )
        })
        .collect();
    for (name, result) in &results {
        let face = face_of(result);
        assert!(face.both_found > 0, "{name}: no face compared");
        assert_targets(name, result);
    }
}

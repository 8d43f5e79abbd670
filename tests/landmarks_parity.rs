//! Holistic parity against MediaPipe's own keypoints: the committed fixtures
//! (tests/fixtures) and the shared signing clips (../shared/media).
#![allow(clippy::unwrap_used)]

use image::AnimationDecoder;
use image::codecs::gif::GifDecoder;
use ndarray::Array2;
use signtop::landmarks::parity::{self, PartParity};
use signtop::landmarks::{Holistic, HolisticOptions, Layout};

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

fn run(frames: &[image::RgbImage], layout: Layout) -> Array2<f32> {
    let mut holistic = Holistic::new(&HolisticOptions {
        layout,
        ..HolisticOptions::default()
    })
    .unwrap();
    let mut out = Array2::zeros((frames.len(), layout.features()));
    for (i, frame) in frames.iter().enumerate() {
        let kp = holistic.process(frame).unwrap();
        kp.write_features(layout, out.row_mut(i).as_slice_mut().unwrap());
    }
    out
}

fn parity_of(
    name: &str,
    frames: &[image::RgbImage],
    reference: &str,
    layout: Layout,
) -> Vec<PartParity> {
    let reference: Array2<f32> = ndarray_npy::read_npy(reference).unwrap();
    let ours = run(frames, layout);
    let result = parity::compare(ours.view(), reference.view()).unwrap();
    eprintln!(
        "{name} ({} frames, {layout}):\n{}",
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

/// The shared clips are 347x196 screen recordings whose hands are ~20 px
/// across: MediaPipe itself finds a hand in one frame and loses it in the
/// next, so a 2 px difference in the pose wrist flips some hand decisions.
/// Given MediaPipe's own pose ROI, our landmarks match its to ~0.0005; the
/// pose excess here is in the tracking ROI (see README "Parity"). These
/// bounds guard what is reached (the targets are asserted on the
/// committed fixtures below); the table printed is the report.
const CLIP_POSE_MAX_DY: f64 = 0.02;
const CLIP_HAND_MIN_AGREEMENT: f64 = 0.7;

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
            let (dx_max, dy_max, min_agreement) = match p.part {
                "pose" => (
                    parity::MAX_MEAN_ABS_DIFF,
                    CLIP_POSE_MAX_DY,
                    parity::MIN_DETECTION_AGREEMENT,
                ),
                _ => (
                    parity::MAX_MEAN_ABS_DIFF,
                    parity::MAX_MEAN_ABS_DIFF,
                    CLIP_HAND_MIN_AGREEMENT,
                ),
            };
            assert!(
                p.mean_dx <= dx_max && p.mean_dy <= dy_max && p.agreement() >= min_agreement,
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

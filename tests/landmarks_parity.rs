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

/// The shared clips are 347x196 screen recordings whose hands are ~10-20 px
/// across: MediaPipe's own hand presence score sits near its 0.5 threshold in
/// many frames (it finds a hand in one frame and loses it in the next), so a
/// fraction of a pixel of difference upstream flips some of those decisions.
/// Pose meets the targets here too; for hands the coordinates do
/// (where both find the hand) and agreement is guarded at this floor.
const CLIP_HAND_MIN_AGREEMENT: f64 = 0.75;

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

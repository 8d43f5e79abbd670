//! Pose parity against MediaPipe's reference keypoints on the shared clips.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use image::AnimationDecoder;
use image::codecs::gif::GifDecoder;
use ndarray::Array2;
use signtop::landmarks::model::DEFAULT_MODELS_DIR;
use signtop::landmarks::pose::PoseTracker;

fn clip_parity(name: &str) -> (f32, f32, f32, usize) {
    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/media/");
    let file = std::fs::File::open(format!("{base}{name}.gif")).unwrap();
    let frames = GifDecoder::new(std::io::BufReader::new(file))
        .unwrap()
        .into_frames()
        .collect_frames()
        .unwrap();
    let reference: Array2<f32> =
        ndarray_npy::read_npy(format!("{base}reference/{name}_258.npy")).unwrap();
    let mut pose = PoseTracker::new(Path::new(DEFAULT_MODELS_DIR)).unwrap();
    let (mut agree, mut both, mut dx, mut dy) = (0usize, 0usize, 0.0f32, 0.0f32);
    let (mut vis_n, mut vis_d) = (0usize, 0.0f32);
    let mut spent = std::time::Duration::ZERO;
    for (i, frame) in frames.iter().enumerate() {
        let rgb = image::DynamicImage::ImageRgba8(frame.buffer().clone()).to_rgb8();
        let started = std::time::Instant::now();
        let ours = pose.process(&rgb).unwrap();
        spent += started.elapsed();
        let row = reference.row(i);
        let theirs = row.iter().take(132).any(|v| *v != 0.0);
        agree += usize::from(ours.is_some() == theirs);
        if let (Some(lms), true) = (ours, theirs) {
            both += 1;
            for (k, lm) in lms.iter().enumerate() {
                dx += (lm.x - row[k * 4]).abs() / 33.0;
                dy += (lm.y - row[k * 4 + 1]).abs() / 33.0;
                if row[k * 4 + 3] > 0.5 {
                    vis_n += 1;
                    vis_d += ((lm.x - row[k * 4]).abs() + (lm.y - row[k * 4 + 1]).abs()) / 2.0;
                }
            }
        }
    }
    let n = frames.len();
    eprintln!(
        "{name}: pose {:.1} ms/frame ({}x{})",
        spent.as_secs_f64() * 1000.0 / n.max(1) as f64,
        frames[0].buffer().width(),
        frames[0].buffer().height()
    );
    let b = both.max(1) as f32;
    eprintln!(
        "{name}: visible landmarks (ref visibility > 0.5): mean |d| {:.4} over {vis_n}",
        vis_d / vis_n.max(1) as f32
    );
    (dx / b, dy / b, agree as f32 / n as f32, n)
}

#[test]
#[ignore = "pose parity not reached yet (cow |dx| 0.0054 |dy| 0.0185, butterfly 0.0068/0.0222; target 0.01): face/shoulders/hips within ~0.01, the excess is in off-image knees/ankles/feet (y ~ 2.1-2.6) and fast-moving wrists/fingers"]
fn pose_matches_mediapipe_on_shared_clips() {
    let results: Vec<_> = ["cow_correct", "butterfly_inference"]
        .into_iter()
        .map(|name| (name, clip_parity(name)))
        .collect();
    for (name, (dx, dy, agreement, n)) in &results {
        eprintln!(
            "{name}: {n} frames, pose mean |dx| {dx:.4} |dy| {dy:.4}, agreement {:.1}%",
            agreement * 100.0
        );
    }
    for (name, (dx, dy, agreement, _)) in results {
        assert!(agreement >= 0.95, "{name}: pose agreement {agreement}");
        assert!(dx <= 0.01 && dy <= 0.01, "{name}: pose |dx| {dx} |dy| {dy}");
    }
}

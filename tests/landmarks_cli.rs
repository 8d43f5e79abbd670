//! `signtop landmarks` as a user runs it: real models on the committed fixture
//! frames, the shared clips, a video made with ffmpeg, `--draw`, and every kind
//! of bad input (a clear error naming the problem, a non-zero exit, no panic).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

mod common;

use assert_cmd::Command;
use common::system::{self, FFMPEG};
use ndarray::{Array2, s};
use predicates::prelude::*;

const ASTRONAUT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/frames/astronaut"
);
const ASTRONAUT_REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/reference/astronaut_258.npy"
);
const COW: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/media/cow_correct.gif"
);
const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models");

fn signtop() -> Command {
    let mut cmd = Command::cargo_bin("signtop").unwrap();
    let log = std::env::temp_dir().join("signtop-landmarks-cli-tests.log");
    cmd.arg("--log-file").arg(log);
    cmd
}

/// `signtop landmarks --input INPUT --out OUT` plus `extra`.
fn landmarks(input: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = signtop();
    cmd.arg("landmarks")
        .arg("--input")
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(extra);
    cmd
}

/// Runs successfully and returns the summary line (stdout).
fn run_ok(input: &Path, out: &Path, extra: &[&str]) -> String {
    let output = landmarks(input, out, extra)
        .assert()
        .success()
        .get_output()
        .clone();
    String::from_utf8(output.stdout).unwrap()
}

/// Runs, expects a failure whose message contains every one of `needles`.
fn run_fails(cmd: &mut Command, needles: &[&str]) {
    let output = cmd.assert().failure().get_output().clone();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
    }
}

/// The integer after `name=` in the summary line (a percentage or a count).
fn figure(summary: &str, name: &str) -> f64 {
    let key = format!("{name}=");
    let start = summary
        .find(&key)
        .unwrap_or_else(|| panic!("{key} not in {summary}"))
        + key.len();
    summary[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect::<String>()
        .parse()
        .unwrap()
}

fn frame_count(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[test]
fn fixture_folder_gives_10x258_that_meets_the_parity_targets() {
    let temp = tempfile::tempdir().unwrap();
    let out = temp.path().join("astronaut.npy");
    let summary = run_ok(Path::new(ASTRONAUT), &out, &[]);
    assert_eq!(figure(&summary, "frames"), 10.0, "{summary}");
    assert!(summary.contains("ms_per_frame="), "{summary}");
    let keypoints: Array2<f32> = ndarray_npy::read_npy(&out).unwrap();
    assert_eq!(keypoints.shape(), &[10, 258]);

    // `compare` exits non-zero when any parity target is missed.
    let output = signtop()
        .arg("compare")
        .arg(&out)
        .arg(ASTRONAUT_REFERENCE)
        .assert()
        .success()
        .get_output()
        .clone();
    let table = String::from_utf8(output.stdout).unwrap();
    let pose = table
        .lines()
        .find(|l| l.starts_with("pose "))
        .unwrap_or_else(|| panic!("no pose row in {table}"));
    let columns: Vec<&str> = pose.split_whitespace().collect();
    // part frames ours ref both agree% ...
    assert_eq!(columns[1..5], ["10", "10", "10", "10"], "{table}");
    let agreement: f64 = columns[5].parse().unwrap();
    assert!(agreement >= 95.0, "{table}");
}

#[test]
fn shared_gif_is_read_in_place_with_both_hands_found() {
    let temp = tempfile::tempdir().unwrap();
    let out = temp.path().join("cow.npy");
    let summary = run_ok(Path::new(COW), &out, &[]);
    eprintln!("{summary}");
    assert!(summary.starts_with("frames=47 pose="), "{summary}");
    assert!(figure(&summary, "pose") > 90.0, "{summary}");
    assert!(figure(&summary, "left_hand") > 0.0, "{summary}");
    assert!(figure(&summary, "right_hand") > 0.0, "{summary}");
    assert!(figure(&summary, "ms_per_frame") > 0.0, "{summary}");
    assert!(!summary.contains("face="), "258 has no face: {summary}");
    assert_eq!(summary.lines().count(), 1, "{summary}");
    let keypoints: Array2<f32> = ndarray_npy::read_npy(&out).unwrap();
    assert_eq!(keypoints.shape(), &[47, 258]);
}

#[test]
fn draw_writes_one_png_per_frame_with_the_landmarks_on_it() {
    let temp = tempfile::tempdir().unwrap();
    let out = temp.path().join("k.npy");
    let drawn = temp.path().join("drawn/nested");
    let draw = drawn.to_str().unwrap();
    run_ok(Path::new(ASTRONAUT), &out, &["--draw", draw]);
    assert_eq!(frame_count(&drawn), 10);
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(ASTRONAUT)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    inputs.sort();
    for (i, input) in inputs.iter().enumerate() {
        let original = image::open(input).unwrap().to_rgb8();
        let path = drawn.join(format!("frame_{i:06}.png"));
        let picture = image::open(&path).unwrap().to_rgb8();
        assert_eq!(picture.dimensions(), original.dimensions());
        let changed = original
            .pixels()
            .zip(picture.pixels())
            .filter(|(a, b)| a != b)
            .count();
        // The pose skeleton covers hundreds of pixels, not the whole frame.
        assert!(
            changed > 300,
            "{}: {changed} pixels changed",
            path.display()
        );
        assert!(changed < 640 * 480 / 10, "{}: {changed}", path.display());
    }
}

#[test]
fn a_video_made_with_ffmpeg_gives_one_row_per_frame() {
    let temp = tempfile::tempdir().unwrap();
    let video = temp.path().join("astronaut.mp4");
    system::require(&[FFMPEG]);
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-framerate",
            "10",
            "-i",
        ])
        .arg(format!("{ASTRONAUT}/%03d.png"))
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(&video)
        .status()
        .unwrap();
    assert!(status.success());
    let out = temp.path().join("video.npy");
    let summary = run_ok(&video, &out, &[]);
    assert_eq!(figure(&summary, "frames"), 10.0, "{summary}");
    assert_eq!(figure(&summary, "pose"), 100.0, "{summary}");
    let keypoints: Array2<f32> = ndarray_npy::read_npy(&out).unwrap();
    assert_eq!(keypoints.shape(), &[10, 258]);
}

#[test]
fn layout_1662_has_the_face_block_exactly_when_the_summary_counts_a_face() {
    let temp = tempfile::tempdir().unwrap();
    let out = temp.path().join("k.npy");
    let still = PathBuf::from(format!("{ASTRONAUT}/000.png"));
    let summary = run_ok(&still, &out, &["--layout", "1662"]);
    let keypoints: Array2<f32> = ndarray_npy::read_npy(&out).unwrap();
    assert_eq!(keypoints.shape(), &[1, 1662]);
    let face_found = keypoints
        .slice(s![0, 132..132 + 1404])
        .iter()
        .any(|v| *v != 0.0);
    let face_percent = figure(&summary, "face");
    assert_eq!(face_found, face_percent == 100.0, "{summary}");
    assert!(keypoints.slice(s![0, 0..132]).iter().any(|v| *v != 0.0));
}

#[test]
fn a_missing_input_is_named() {
    let temp = tempfile::tempdir().unwrap();
    run_fails(
        &mut landmarks(
            Path::new("/nonexistent/clip.gif"),
            &temp.path().join("k.npy"),
            &[],
        ),
        &["/nonexistent/clip.gif", "no such file"],
    );
}

#[test]
fn a_file_that_is_no_media_is_named() {
    let temp = tempfile::tempdir().unwrap();
    let notes = temp.path().join("notes.txt");
    std::fs::write(&notes, "not a picture, not a video").unwrap();
    run_fails(
        &mut landmarks(&notes, &temp.path().join("k.npy"), &[]),
        &["notes.txt", "not a video"],
    );
}

#[test]
fn a_truncated_png_is_a_decoding_error() {
    let temp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(format!("{ASTRONAUT}/000.png")).unwrap();
    let broken = temp.path().join("broken.png");
    std::fs::write(&broken, &bytes[..bytes.len() / 2]).unwrap();
    run_fails(
        &mut landmarks(&broken, &temp.path().join("k.npy"), &[]),
        &["decoding", "broken.png"],
    );
}

#[test]
fn a_corrupt_frame_in_a_folder_leaves_no_output_file() {
    let temp = tempfile::tempdir().unwrap();
    let frames = temp.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    for name in ["000.png", "001.png"] {
        std::fs::copy(format!("{ASTRONAUT}/{name}"), frames.join(name)).unwrap();
    }
    let bytes = std::fs::read(format!("{ASTRONAUT}/002.png")).unwrap();
    std::fs::write(frames.join("002.png"), &bytes[..bytes.len() / 3]).unwrap();
    let out_dir = temp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    run_fails(
        &mut landmarks(&frames, &out_dir.join("k.npy"), &[]),
        &["frame 2", "002.png"],
    );
    assert_eq!(frame_count(&out_dir), 0, "no .npy, whole or partial");
}

#[test]
fn zero_frames_are_an_error() {
    let temp = tempfile::tempdir().unwrap();
    let empty = temp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("README.txt"), "no images here").unwrap();
    run_fails(
        &mut landmarks(&empty, &temp.path().join("k.npy"), &[]),
        &["empty", "holds no images"],
    );
}

#[test]
fn a_wrong_layout_is_rejected_with_the_choices() {
    let temp = tempfile::tempdir().unwrap();
    let mut cmd = landmarks(
        Path::new(ASTRONAUT),
        &temp.path().join("k.npy"),
        &["--layout", "300"],
    );
    run_fails(&mut cmd, &["300", "258", "1662"]);
}

#[test]
fn a_missing_models_folder_is_named() {
    let temp = tempfile::tempdir().unwrap();
    let mut cmd = landmarks(
        Path::new(ASTRONAUT),
        &temp.path().join("k.npy"),
        &["--models", "/nonexistent/models"],
    );
    run_fails(&mut cmd, &["/nonexistent/models", "does not exist"]);
}

#[test]
fn a_missing_model_file_is_named() {
    // The real models, linked, all but the hand re-crop model.
    let temp = tempfile::tempdir().unwrap();
    let models = temp.path().join("models");
    std::fs::create_dir(&models).unwrap();
    for entry in std::fs::read_dir(MODELS).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != "hand_recrop.onnx" {
            std::os::unix::fs::symlink(&path, models.join(path.file_name().unwrap())).unwrap();
        }
    }
    let mut cmd = landmarks(
        Path::new(ASTRONAUT),
        &temp.path().join("k.npy"),
        &["--models", models.to_str().unwrap()],
    );
    run_fails(&mut cmd, &["hand_recrop.onnx", "file not found"]);
}

#[test]
fn a_missing_output_folder_is_named_before_any_work() {
    let temp = tempfile::tempdir().unwrap();
    let out = temp.path().join("no/such/folder/k.npy");
    run_fails(
        &mut landmarks(Path::new(ASTRONAUT), &out, &[]),
        &["no/such/folder", "does not exist"],
    );
}

#[test]
fn a_video_without_ffmpeg_names_the_missing_program() {
    let temp = tempfile::tempdir().unwrap();
    let video = temp.path().join("clip.mp4");
    std::fs::write(&video, b"\0\0\0\x18ftypmp42").unwrap();
    let mut cmd = landmarks(&video, &temp.path().join("k.npy"), &[]);
    cmd.env("PATH", temp.path());
    run_fails(&mut cmd, &["clip.mp4", "ffmpeg", "not found"]);
}

#[test]
fn help_documents_the_command() {
    signtop()
        .args(["landmarks", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--draw").and(predicate::str::contains("258|1662")));
}

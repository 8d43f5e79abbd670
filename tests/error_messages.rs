//! Each cause said once: the CLI on a truncated GIF, a corrupt PNG, files
//! that are not ONNX models and a bad config line ends with one message in
//! which no link of the chain ("context: cause: its cause") is said twice,
//! not even inside another link.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use assert_cmd::Command;

const COW: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/media/cow_correct.gif"
);
const SIDECAR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/signs.json");
const BAD_CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/config/threshold_out_of_range.toml"
);

fn signtop(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("signtop").unwrap();
    cmd.arg("--log-file").arg(dir.join("signtop.log"));
    cmd
}

/// The error line of a run that must fail, without its "signtop: error: ".
fn error_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{cmd:?} succeeded");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("signtop: error: "))
        .unwrap_or_else(|| panic!("no error line in:\n{stderr}"));
    line.to_string()
}

/// The error of `signtop landmarks` on `input`.
fn landmarks_error(dir: &Path, input: &Path) -> String {
    error_of(
        signtop(dir)
            .arg("landmarks")
            .arg("--input")
            .arg(input)
            .arg("--out")
            .arg(dir.join("k.npy")),
    )
}

/// Asserts no link of `message` repeats another or is said inside another.
fn assert_each_cause_once(message: &str, needle: &str) {
    assert!(message.contains(needle), "{needle:?} not in {message}");
    let links: Vec<&str> = message.split(": ").map(str::trim).collect();
    for (i, a) in links.iter().enumerate() {
        for (j, b) in links.iter().enumerate() {
            assert!(
                i == j || a.len() < 4 || !b.contains(a),
                "{a:?} is said again in {b:?}: {message}"
            );
        }
    }
}

#[test]
fn a_truncated_gif_is_told_once() {
    let dir = tempfile::tempdir().unwrap();
    let gif = std::fs::read(COW).unwrap();
    let truncated = dir.path().join("trunc.gif");
    std::fs::write(&truncated, &gif[..gif.len() / 3]).unwrap();
    let message = landmarks_error(dir.path(), &truncated);
    assert_each_cause_once(&message, "trunc.gif");
    // The monitor says it the same way.
    let message = error_of(
        signtop(dir.path())
            .args(["--headless", "--max-speed", "--input"])
            .arg(&truncated),
    );
    assert_each_cause_once(&message, "trunc.gif");
}

#[test]
fn a_corrupt_png_is_told_once() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("bad.png");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n not really a PNG").unwrap();
    let message = landmarks_error(dir.path(), &png);
    assert_each_cause_once(&message, "bad.png");
}

#[test]
fn a_sign_model_that_is_no_onnx_is_told_once() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("wrong.onnx");
    std::fs::write(&model, b"this is not a protobuf at all").unwrap();
    std::fs::copy(SIDECAR, dir.path().join("wrong.json")).unwrap();
    let message = error_of(
        signtop(dir.path())
            .args(["--headless", "--demo", "--sign-model"])
            .arg(&model),
    );
    assert_each_cause_once(&message, "not a loadable ONNX model");
}

#[test]
fn a_landmark_model_that_is_no_onnx_is_told_once() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    std::fs::write(models.join("pose_detection.onnx"), [0xffu8; 64]).unwrap();
    let message = error_of(
        signtop(dir.path())
            .args(["--headless", "--demo", "--models"])
            .arg(&models),
    );
    assert_each_cause_once(&message, "pose_detection.onnx");
}

#[test]
fn a_bad_config_line_is_told_once() {
    let dir = tempfile::tempdir().unwrap();
    let message = error_of(
        signtop(dir.path())
            .args(["--headless", "--demo", "--config"])
            .arg(BAD_CONFIG),
    );
    assert_each_cause_once(&message, "decision.threshold = 1.5 is out of range");
}

#[test]
fn no_camera_says_how_to_see_signtop_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let message = error_of(signtop(dir.path()).args([
        "--headless",
        "--device",
        "/dev/signtop-no-such-camera",
    ]));
    assert_each_cause_once(&message, "/dev/signtop-no-such-camera");
    assert!(
        message.contains("--demo") && message.contains("--input PATH"),
        "{message}"
    );
}

//! The monitor's command line: `--headless` on a replayed clip prints valid
//! JSON Lines whose counts add up; bad settings are clear errors.
#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;
use serde_json::Value;

const CLIP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/media/cow_correct.gif"
);
const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models");
const SIGN_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/signs.onnx");
const CLIP_FRAMES: u64 = 47;
const BUTTERFLY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/media/butterfly_inference.gif"
);

fn signtop(log_dir: &tempfile::TempDir) -> Command {
    let mut cmd = Command::cargo_bin("signtop").unwrap();
    cmd.arg("--log-file")
        .arg(log_dir.path().join("signtop.log"));
    cmd
}

fn lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8(stdout.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The JSON Lines of a run that must succeed.
fn successful_lines(cmd: &mut Command) -> Vec<Value> {
    lines(&cmd.assert().success().get_output().stdout)
}

#[test]
fn headless_replay_prints_valid_json_and_counts_add_up() {
    let logs = tempfile::tempdir().unwrap();
    let mut replay = signtop(&logs);
    replay
        .args([
            "--headless",
            "--max-speed",
            "--stats-interval",
            "0.2",
            "--input",
            CLIP,
        ])
        .args(["--models", MODELS, "--sign-model", SIGN_MODEL]);
    let lines = successful_lines(&mut replay);
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary", "{summary}");
    let n = |k: &str| summary[k].as_u64().unwrap();
    assert_eq!(n("frames_in"), CLIP_FRAMES);
    assert_eq!(n("frames_in"), n("processed") + n("dropped"), "{summary}");
    assert_eq!(n("in_flight"), 0);
    for line in &lines {
        match line["type"].as_str().unwrap() {
            "decision" => {
                let p = line["probability"].as_f64().unwrap();
                let sign = line["sign"].as_str().unwrap();
                assert_eq!(line["probabilities"][sign].as_f64().unwrap(), p);
                assert!(line["time"].as_f64().unwrap() >= 0.0);
            }
            "stats" | "summary" => {
                for stage in ["capture", "landmarks", "classify", "end_to_end"] {
                    assert!(line["latency_ms"][stage]["p99"].is_number(), "{line}");
                }
            }
            other => panic!("unknown line type {other}"),
        }
    }
}

/// The signs a headless, every-frame replay of `input` decides, in order,
/// with the number of the frame that decided each; `extra` arguments are added.
fn decided_signs(input: &str, extra: &[&str]) -> (Vec<(String, f64)>, Value) {
    let logs = tempfile::tempdir().unwrap();
    let out = signtop(&logs)
        .args([
            "--headless",
            "--every-frame",
            "--max-speed",
            "--input",
            input,
        ])
        .args(["--models", MODELS, "--sign-model", SIGN_MODEL])
        .args(extra)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let lines = lines(&out);
    let summary = lines.last().unwrap().clone();
    assert_eq!(summary["dropped"].as_u64(), Some(0), "{summary}");
    let signs = lines
        .iter()
        .filter(|l| l["type"] == "decision")
        .map(|l| {
            (
                l["sign"].as_str().unwrap().to_string(),
                l["frame"].as_f64().unwrap(),
            )
        })
        .collect();
    (signs, summary)
}

/// The whole live path on real frames: capture (replay) -> Holistic on tract
/// -> the shipped sign model -> smoothing. With --every-frame no frame is
/// dropped however slow the machine, so the result does not depend on load:
/// each clip of a person signing is decided as its sign, and as nothing else.
#[test]
fn every_frame_replay_recognises_each_clip_as_its_sign_only() {
    for (clip, sign, frames) in [(CLIP, "Cow", CLIP_FRAMES), (BUTTERFLY, "Butterfly", 40)] {
        let (signs, summary) = decided_signs(clip, &[]);
        assert_eq!(summary["processed"].as_u64(), Some(frames), "{summary}");
        assert!(
            !signs.is_empty() && signs.iter().all(|(s, _)| s == sign),
            "{clip}: decisions {signs:?}; {summary}"
        );
    }
}

/// The window covers a time span, not a frame count: the Cow clip (10 frames
/// a second) made into 15 and 30 frames a second (each frame shown for its
/// time, as ffmpeg's fps filter does) gives the same decisions.
#[test]
fn a_clip_at_10_15_and_30_fps_gives_the_same_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for fps in [10, 15, 30] {
        let folder = dir.path().join(format!("fps{fps}"));
        std::fs::create_dir(&folder).unwrap();
        let status = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i", CLIP, "-vf"])
            .arg(format!("fps={fps}"))
            .arg(folder.join("%04d.png"))
            .status()
            .expect("ffmpeg runs (apt-get install ffmpeg)");
        assert!(status.success());
        let (signs, _) = decided_signs(folder.to_str().unwrap(), &["--fps", &fps.to_string()]);
        runs.push((fps, signs));
    }
    let (_, ten) = &runs[0];
    assert!(!ten.is_empty(), "{runs:?}");
    for (fps, signs) in &runs[1..] {
        let labels = |s: &[(String, f64)]| s.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>();
        assert_eq!(labels(signs), labels(ten), "{fps} fps: {runs:?}");
        // Decided within one of the model's frame intervals (0.1 s) of the same clip time.
        for ((_, a), (_, b)) in signs.iter().zip(ten) {
            let (a, b) = (a / f64::from(*fps), b / 10.0);
            assert!(
                (a - b).abs() <= 0.101,
                "{fps} fps decided at {a} s, 10 fps at {b} s"
            );
        }
    }
}

#[test]
fn every_frame_needs_a_replay() {
    let logs = tempfile::tempdir().unwrap();
    signtop(&logs)
        .args(["--headless", "--every-frame"])
        .assert()
        .failure()
        .stderr(contains("--input"));
}

#[test]
fn frames_limit_stops_early() {
    let logs = tempfile::tempdir().unwrap();
    let out = signtop(&logs)
        .args(["--headless", "--frames", "10", "--input", CLIP])
        .args(["--models", MODELS, "--sign-model", SIGN_MODEL])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let summary = lines(&out).pop().unwrap();
    assert_eq!(summary["frames_in"], 10);
}

#[test]
fn a_bad_config_value_names_the_key_and_line() {
    let logs = tempfile::tempdir().unwrap();
    let config = logs.path().join("bad.toml");
    std::fs::write(&config, "[camera]\nfps = 30\n\n[decision]\ncooldown = -1\n").unwrap();
    signtop(&logs)
        .args(["--headless", "--input", CLIP, "--config"])
        .arg(&config)
        .assert()
        .failure()
        .stderr(contains(
            "bad.toml:5: decision.cooldown = -1 is out of range",
        ));
}

#[test]
fn a_flag_out_of_range_is_refused() {
    let logs = tempfile::tempdir().unwrap();
    signtop(&logs)
        .args(["--headless", "--input", CLIP, "--threshold", "1.5"])
        .assert()
        .failure()
        .stderr(contains("--threshold 1.5 is out of range"));
}

#[test]
fn a_missing_sign_model_is_named() {
    let logs = tempfile::tempdir().unwrap();
    signtop(&logs)
        .args([
            "--headless",
            "--input",
            CLIP,
            "--sign-model",
            "/nonexistent/signs.onnx",
        ])
        .assert()
        .failure()
        .stderr(contains("/nonexistent/signs.onnx"));
}

#[test]
fn monitor_flags_do_not_mix_with_subcommands() {
    let logs = tempfile::tempdir().unwrap();
    signtop(&logs)
        .args(["devices", "--input", CLIP])
        .assert()
        .failure();
}

#[test]
fn the_user_config_file_is_read_without_config() {
    let logs = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("signtop");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("signtop.toml"), "[decision]\nthreshold = 7\n").unwrap();
    signtop(&logs)
        .env("XDG_CONFIG_HOME", home.path())
        .args(["--headless", "--input", CLIP])
        .assert()
        .failure()
        .stderr(contains("signtop.toml:2").and(contains("decision.threshold")));
}

#[test]
fn the_demo_runs_on_the_built_in_clip_and_loops() {
    // No --input, --models or --sign-model: everything from the binary.
    let logs = tempfile::tempdir().unwrap();
    let frames = 2 * CLIP_FRAMES + 10;
    let mut demo = signtop(&logs);
    demo.args(["--headless", "--demo", "--max-speed", "--frames"])
        .arg(frames.to_string());
    let lines = successful_lines(&mut demo);
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary", "{summary}");
    // More frames than the clip has: it played again from the start.
    let n = |k: &str| summary[k].as_u64().unwrap();
    assert_eq!(n("frames_in"), frames, "{summary}");
    assert_eq!(n("frames_in"), n("processed") + n("dropped"), "{summary}");
}

#[test]
fn a_looped_replay_recognises_each_pass_alone() {
    // Every frame of three passes: the windows across a seam (the clip's
    // end, then its start) are no signing; each pass starts a new window.
    let logs = tempfile::tempdir().unwrap();
    let frames = 3 * CLIP_FRAMES;
    let mut replay = signtop(&logs);
    replay
        .args(["--headless", "--every-frame", "--max-speed", "--loop"])
        .args(["--input", CLIP, "--frames"])
        .arg(frames.to_string());
    let lines = successful_lines(&mut replay);
    let signs: Vec<&str> = lines
        .iter()
        .filter(|l| l["type"] == "decision")
        .map(|l| l["sign"].as_str().unwrap())
        .collect();
    assert_eq!(signs, ["Cow", "Cow", "Cow"], "{lines:?}");
    assert_eq!(lines.last().unwrap()["processed"], frames);
}

//! `signtop record` and `signtop practice` headless on replays, the sign
//! model reloaded while the monitor runs, and `--transcript`: what record
//! writes is read back by `eval` and `train`; a take cut short (input ended,
//! source failed, SIGTERM) is discarded and said so, the finished ones kept.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

const CLIP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/media/cow_correct.gif"
);
const FRAMES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/frames/camera");
const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models");
const SIGN_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/signs.onnx");

/// The runs here time takes by the frames' capture times: one at a time, so
/// that landmarks keep up with the replay on two cores and no frame comes late.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn signtop(logs: &tempfile::TempDir) -> Command {
    let mut cmd = Command::cargo_bin("signtop").unwrap();
    cmd.arg("--log-file").arg(logs.path().join("signtop.log"));
    cmd
}

fn lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8(stdout.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn of_type<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["type"] == kind).collect()
}

/// `signtop record --headless` into `dir`; its JSON Lines and whether it succeeded.
fn record(dir: &Path, input: &str, extra: &[&str]) -> (Vec<Value>, bool) {
    let logs = tempfile::tempdir().unwrap();
    let out = signtop(&logs)
        .arg("record")
        .arg("--out")
        .arg(dir)
        .args(["--headless", "--input", input, "--models", MODELS])
        .args(extra)
        .output()
        .unwrap();
    (lines(&out.stdout), out.status.success())
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn recorded_takes_are_read_back_by_eval_and_train() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let takes = dir.path().join("takes");
    // The Cow clip at 5 FPS lasts 9.4 s: one 6 s take (30 frames, the
    // shipped model's window) after a 0.5 s countdown.
    let timing = [
        "--takes",
        "1",
        "--seconds",
        "6",
        "--countdown",
        "0.5",
        "--fps",
        "5",
    ];
    for sign in ["Cow", "Bird"] {
        let (lines, ok) = record(&takes, CLIP, &[&["--sign", sign][..], &timing].concat());
        assert!(ok, "{lines:?}");
        let saved = of_type(&lines, "take");
        assert_eq!(saved.len(), 1, "{lines:?}");
        assert_eq!(saved[0]["frames"], 30, "6 s at 5 FPS: {}", saved[0]);
        assert_eq!(saved[0]["take"], "take-001");
        let summary = lines.last().unwrap();
        assert_eq!(summary["type"], "summary");
        assert_eq!(summary["complete"], true);
        assert_eq!(summary["takes"][sign], 1);
    }
    assert_eq!(
        files_in(&takes.join("Cow")),
        ["take-001.json", "take-001.npy"]
    );
    let keypoints: ndarray::Array2<f32> =
        ndarray_npy::read_npy(takes.join("Cow/take-001.npy")).unwrap();
    assert_eq!(keypoints.dim(), (30, 258));
    assert!(keypoints.iter().any(|v| *v != 0.0), "the pose was found");
    let sidecar: Value =
        serde_json::from_str(&std::fs::read_to_string(takes.join("Cow/take-001.json")).unwrap())
            .unwrap();
    assert_eq!(sidecar["format"], "signtop-recording/1");
    assert_eq!(sidecar["sign"], "Cow");
    assert_eq!(sidecar["layout"], 258);
    assert_eq!(sidecar["frames"], 30);
    let stamps = sidecar["timestamps_ms"].as_array().unwrap();
    assert_eq!(stamps.len(), 30);
    assert_eq!(stamps[0], 0.0);
    let fps = sidecar["fps"].as_f64().unwrap();
    assert!((4.5..5.5).contains(&fps), "{fps}");
    assert!(
        sidecar["device"]
            .as_str()
            .unwrap()
            .contains("cow_correct.gif")
    );
    assert_eq!(
        (sidecar["width"].as_u64(), sidecar["height"].as_u64()),
        (Some(347), Some(196))
    );
    assert_eq!(sidecar["signtop_version"], env!("CARGO_PKG_VERSION"));

    let logs = tempfile::tempdir().unwrap();
    let eval = signtop(&logs)
        .args(["eval", "--model", SIGN_MODEL, "--data"])
        .arg(&takes)
        .output()
        .unwrap();
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    let model = dir.path().join("mine.onnx");
    let train = signtop(&logs)
        .args(["train", "--epochs", "1", "--val-split", "0", "--data"])
        .arg(&takes)
        .arg("--out")
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        train.status.success(),
        "{}",
        String::from_utf8_lossy(&train.stderr)
    );
    assert!(model.is_file());
}

#[test]
fn a_take_cut_short_by_the_end_of_the_input_is_discarded() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let timing = ["--takes", "5", "--seconds", "2", "--countdown", "0"];
    let (lines, ok) = record(
        dir.path(),
        CLIP,
        &[&["--sign", "Cow"][..], &timing].concat(),
    );
    assert!(ok, "{lines:?}");
    // 4.7 s: two 2 s takes, and 0.7 s of a third.
    assert_eq!(of_type(&lines, "take").len(), 2, "{lines:?}");
    let discarded = of_type(&lines, "discarded");
    assert_eq!(discarded.len(), 1, "{lines:?}");
    assert_eq!(discarded[0]["reason"], "the input ended");
    assert!(discarded[0]["frames"].as_u64().unwrap() > 0);
    let summary = lines.last().unwrap();
    assert_eq!(
        (
            summary["complete"].as_bool(),
            summary["takes"]["Cow"].as_u64()
        ),
        (Some(false), Some(2))
    );
    assert_eq!(
        files_in(&dir.path().join("Cow")).len(),
        4,
        "two takes, two sidecars"
    );
}

#[test]
fn a_source_failing_mid_take_keeps_the_finished_takes() {
    let _serial = serial();
    // The fixture frames, with a corrupt image after the sixth.
    let frames = tempfile::tempdir().unwrap();
    for name in files_in(Path::new(FRAMES))
        .iter()
        .filter(|n| n.ends_with(".png"))
    {
        std::fs::copy(Path::new(FRAMES).join(name), frames.path().join(name)).unwrap();
    }
    std::fs::write(
        frames.path().join("005b.png"),
        b"\x89PNG\r\n\x1a\nnot really",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = frames.path().to_str().unwrap();
    // 5 FPS, 0.8 s takes: frames 0-3 make a take, 4-5 are cut short by the bad frame.
    let timing = [
        "--takes",
        "3",
        "--seconds",
        "0.8",
        "--countdown",
        "0",
        "--fps",
        "5",
    ];
    let (lines, ok) = record(
        dir.path(),
        input,
        &[&["--sign", "Cow"][..], &timing].concat(),
    );
    assert!(!ok, "a failed source is a failure: {lines:?}");
    let saved = of_type(&lines, "take");
    assert_eq!(saved.len(), 1, "{lines:?}");
    assert_eq!(saved[0]["frames"], 4);
    // The stages stop as soon as the source fails: frames 4-5 may or may not
    // have reached the take by then; if they did, it is discarded, named.
    let discarded = of_type(&lines, "discarded");
    assert!(discarded.len() <= 1, "{lines:?}");
    for d in discarded {
        let reason = d["reason"].as_str().unwrap();
        assert!(reason.starts_with("the source failed"), "{reason}");
    }
    let summary = lines.last().unwrap();
    assert!(
        summary["error"].as_str().unwrap().contains("005b.png"),
        "the error names the frame: {summary}"
    );
    // The take announced is on disk, whole, with its sidecar; nothing else.
    let path = PathBuf::from(saved[0]["path"].as_str().unwrap());
    let keypoints: ndarray::Array2<f32> = ndarray_npy::read_npy(&path).unwrap();
    assert_eq!(keypoints.nrows(), 4);
    assert_eq!(
        files_in(&dir.path().join("Cow")),
        ["take-001.json", "take-001.npy"]
    );
}

/// Reads JSON lines from a child's stdout until `want` matches one; all lines read so far.
fn read_until(
    reader: &mut impl BufRead,
    seen: &mut Vec<Value>,
    want: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "never saw it; got {seen:?}");
        let mut line = String::new();
        let n = reader.read_line(&mut line).unwrap();
        assert!(n > 0, "output ended; got {seen:?}");
        let value: Value = serde_json::from_str(&line).unwrap();
        seen.push(value.clone());
        if want(&value) {
            return value;
        }
    }
}

fn spawn(logs: &tempfile::TempDir, args: &[&str]) -> Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_signtop"))
        .arg("--log-file")
        .arg(logs.path().join("signtop.log"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn sigterm(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn sigterm_mid_take_loses_nothing_finished() {
    let _serial = serial();
    let logs = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    // 5 FPS: a 2 s take is 10 frames, the clip lasts 9.4 s.
    let mut child = spawn(
        &logs,
        &[
            "record",
            "--headless",
            "--out",
            out,
            "--sign",
            "Cow",
            "--takes",
            "3",
            "--seconds",
            "2",
            "--countdown",
            "0.2",
            "--fps",
            "5",
            "--input",
            CLIP,
            "--models",
            MODELS,
        ],
    );
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    let first = read_until(&mut reader, &mut seen, |l| l["type"] == "take");
    // Into the second take (0.2 s countdown, then frames).
    std::thread::sleep(Duration::from_millis(900));
    sigterm(&child);
    let summary = read_until(&mut reader, &mut seen, |l| l["type"] == "summary");
    assert!(child.wait().unwrap().success(), "a signal is a normal stop");
    let discarded = of_type(&seen, "discarded");
    assert_eq!(discarded.len(), 1, "{seen:?}");
    assert_eq!(discarded[0]["reason"], "stopped (signal or q)");
    assert_eq!(summary["takes"]["Cow"], 1, "{summary}");
    let npy = PathBuf::from(first["path"].as_str().unwrap());
    let keypoints: ndarray::Array2<f32> = ndarray_npy::read_npy(&npy).unwrap();
    assert_eq!(keypoints.nrows(), 10);
    assert_eq!(
        files_in(&dir.path().join("Cow")),
        ["take-001.json", "take-001.npy"],
        "the finished take, whole, and nothing of the second"
    );
}

#[test]
fn practice_on_a_replay_plays_the_same_game_for_a_seed() {
    let _serial = serial();
    let logs = tempfile::tempdir().unwrap();
    let run = |seed: &str| {
        let out = signtop(&logs)
            .args([
                "practice",
                "--headless",
                "--signs",
                "Cow,Bird",
                "--rounds",
                "2",
            ])
            .args(["--seed", seed, "--input", CLIP, "--every-frame"])
            .args(["--models", MODELS, "--sign-model", SIGN_MODEL])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        lines(&out.stdout)
    };
    // Seed 2 shows Cow first: the clip's sign.
    let lines = run("2");
    let targets = of_type(&lines, "target");
    assert_eq!(targets[0]["sign"], "Cow", "{lines:?}");
    let correct = of_type(&lines, "correct");
    assert_eq!(correct.len(), 1, "{lines:?}");
    assert_eq!(
        (correct[0]["round"].as_u64(), correct[0]["sign"].as_str()),
        (Some(1), Some("Cow"))
    );
    let seconds = correct[0]["seconds"].as_f64().unwrap();
    assert!(
        (0.5..4.7).contains(&seconds),
        "time to recognise within the clip: {seconds}"
    );
    assert_eq!(targets[1]["sign"], "Bird", "never the same twice in a row");
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["score"], 1);
    assert_eq!(summary["signs"]["Cow"]["tries"], 1);
    assert_eq!(summary["signs"]["Cow"]["right"], 1);
    assert_eq!(
        summary["signs"]["Bird"]["tries"], 0,
        "the round in progress is not counted"
    );
    assert_eq!(
        summary["signs"]["Cow"]["mean_seconds"].as_f64(),
        Some(seconds)
    );
    // The times follow the paced frames' capture stamps; the game itself repeats.
    let game = |lines: &[Value]| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l["type"] != "summary")
            .map(|l| format!("{} {} {} {}", l["type"], l["round"], l["sign"], l["score"]))
            .collect()
    };
    assert_eq!(
        game(&run("2")),
        game(&lines),
        "the same seed plays the same game"
    );
}

#[test]
fn practice_refuses_a_sign_the_model_does_not_know() {
    let logs = tempfile::tempdir().unwrap();
    let out = signtop(&logs)
        .args([
            "practice",
            "--headless",
            "--signs",
            "Cow,Horse",
            "--input",
            CLIP,
        ])
        .args(["--models", MODELS, "--sign-model", SIGN_MODEL])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"Horse\" is not a sign of the model"),
        "{err}"
    );
}

#[test]
fn the_monitor_reloads_a_replaced_model_and_keeps_the_old_on_a_bad_one() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("signs.onnx");
    std::fs::copy(SIGN_MODEL, &model).unwrap();
    std::fs::copy(
        Path::new(SIGN_MODEL).with_extension("json"),
        model.with_extension("json"),
    )
    .unwrap();
    let transcript = dir.path().join("transcript.jsonl");
    let logs = tempfile::tempdir().unwrap();
    let mut child = spawn(
        &logs,
        &[
            "--headless",
            "--fps",
            "5",
            "--stats-interval",
            "0.5",
            "--input",
            CLIP,
            "--models",
            MODELS,
            "--sign-model",
            model.to_str().unwrap(),
            "--transcript",
            transcript.to_str().unwrap(),
        ],
    );
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    read_until(&mut reader, &mut seen, |l| l["type"] == "stats");
    std::fs::write(&model, b"not an onnx model").unwrap();
    let refused = read_until(&mut reader, &mut seen, |l| l["type"] == "model_error");
    assert!(
        refused["path"].as_str().unwrap().ends_with("signs.onnx"),
        "{refused}"
    );
    std::fs::copy(SIGN_MODEL, &model).unwrap();
    let reloaded = read_until(&mut reader, &mut seen, |l| l["type"] == "model");
    assert_eq!(reloaded["labels"].as_array().unwrap().len(), 7);
    let summary = read_until(&mut reader, &mut seen, |l| l["type"] == "summary");
    assert!(child.wait().unwrap().success());
    assert!(
        summary.get("error").is_none(),
        "the pipeline never stopped: {summary}"
    );
    assert_eq!(
        summary["frames_in"], 47,
        "every frame of the clip went through"
    );
    // The transcript file holds each decision printed.
    let decisions = of_type(&seen, "decision");
    let written: Vec<Value> = std::fs::read_to_string(&transcript)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(written.len(), decisions.len());
    for (w, d) in written.iter().zip(&decisions) {
        assert_eq!(w["sign"], d["sign"]);
        assert!(w["time"].as_str().unwrap().ends_with('Z'), "{w}");
    }
}

#[test]
fn bad_record_options_are_named() {
    let logs = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (args, expect) in [
        (vec!["--seconds", "0"], "--seconds 0"),
        (vec!["--takes", "0"], "--takes 0"),
        (vec!["--sign", "a/b"], "\"a/b\""),
    ] {
        let out = signtop(&logs)
            .arg("record")
            .arg("--out")
            .arg(dir.path())
            .args(["--headless", "--input", CLIP])
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}

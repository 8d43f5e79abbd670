//! End to end in a real terminal (tmux): `signtop record` on a replay (keys,
//! a take saved, SIGTERM mid-take discarding only that take), `signtop
//! practice` with a fixed seed (CORRECT, skip, the summary), and the camera
//! preview in half blocks with its toggle, and `w` writing the transcript.
#![allow(clippy::unwrap_used)]

mod common;
mod tmux_support;

use std::path::Path;
use std::process::Command;

use tmux_support::{Tmux, monitor_pid};

const CLIP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/media/cow_correct.gif"
);
const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models");
const SIGN_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/signs.onnx");

/// Takes are timed by the frames' capture times: one run at a time, so that
/// landmarks keep up with the replay on two cores.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn command(args: &str, logs: &tempfile::TempDir) -> String {
    let bin = env!("CARGO_BIN_EXE_signtop");
    format!(
        "{bin} {args} --input {CLIP} --models {MODELS} --log-file {}; echo EXITED rc=$?; sleep 60",
        logs.path().join("log").display()
    )
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn record_saves_a_take_and_sigterm_mid_take_discards_only_that_one() {
    let _serial = serial();
    let logs = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // 5 FPS: 9.4 s of clip, 2 s takes of 10 frames.
    let args = format!(
        "record --out {} --sign Cow --sign Bird --takes 3 --seconds 2 --countdown 0.3 --fps 5",
        dir.path().display()
    );
    let tmux = Tmux::start("record-term", &command(&args, &logs));
    tmux.wait_for("PAUSED: space records take 1/3");
    tmux.keys("Space");
    tmux.wait_for("saved Cow/take-001.npy (10 frames");
    tmux.wait_for("RECORDING take 2/3");
    let pid = monitor_pid(&logs);
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let after = tmux.wait_for("EXITED rc=0");
    assert!(after.contains("saved 1 takes in"), "{after}");
    assert!(
        after.contains("discarded the take in progress (Cow,"),
        "says what it dropped: {after}"
    );
    assert_eq!(tmux.format("#{alternate_on}"), "0", "terminal restored");
    assert_eq!(
        files_in(&dir.path().join("Cow")),
        ["take-001.json", "take-001.npy"]
    );
    let keypoints: ndarray::Array2<f32> =
        ndarray_npy::read_npy(dir.path().join("Cow/take-001.npy")).unwrap();
    assert_eq!(keypoints.dim(), (10, 258));
}

#[test]
fn record_keys_delete_next_sign_help_and_quit() {
    let _serial = serial();
    let logs = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = format!(
        "record --out {} --sign Cow --sign Bird --takes 2 --seconds 2.5 --countdown 0 --fps 5",
        dir.path().display()
    );
    let tmux = Tmux::start("record-keys", &command(&args, &logs));
    tmux.wait_for("PAUSED");
    tmux.keys("Space");
    tmux.wait_for("saved Cow/take-001.npy");
    tmux.keys("Space");
    tmux.wait_for("PAUSED: space records take 2/2");
    tmux.keys("d");
    tmux.wait_for("deleted Cow/take-001");
    assert!(files_in(&dir.path().join("Cow")).is_empty());
    tmux.keys("n");
    tmux.wait_for("sign: Bird");
    tmux.keys("?");
    tmux.wait_for("delete the last take");
    tmux.keys("?");
    tmux.keys("q");
    let after = tmux.wait_for("EXITED rc=0");
    assert!(after.contains("saved 0 takes in"), "{after}");
}

#[test]
fn practice_shows_correct_skips_and_prints_the_summary() {
    let _serial = serial();
    let logs = tempfile::tempdir().unwrap();
    // Seed 2 shows Cow first (the clip's sign), then Bird.
    let args = format!(
        "practice --signs Cow,Bird --rounds 2 --seed 2 --every-frame --sign-model {SIGN_MODEL}"
    );
    let tmux = Tmux::start("practice", &command(&args, &logs));
    tmux.wait_for("target: Cow");
    tmux.wait_for("Cow recognised in");
    tmux.wait_for("target: Bird");
    assert!(tmux.screen().contains("score 1"), "{}", tmux.screen());
    tmux.keys("s");
    tmux.wait_for("every round played");
    tmux.keys("q");
    let after = tmux.wait_for("EXITED rc=0");
    assert!(after.contains("score 1 in 2 rounds"), "{after}");
    let cow = after.lines().find(|l| l.starts_with("Cow ")).unwrap();
    let bird = after.lines().find(|l| l.starts_with("Bird ")).unwrap();
    let columns = |l: &str| {
        l.split_whitespace()
            .skip(1)
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(columns(cow), "1 1", "{after}");
    assert_eq!(columns(bird), "1 0", "{after}");
}

#[test]
fn the_preview_draws_half_blocks_in_tmux_and_v_toggles_it() {
    let _serial = serial();
    let logs = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = format!(
        "--preview --fps 5 --sign-model {SIGN_MODEL} --transcript {}",
        dir.path().join("t.jsonl").display()
    );
    let tmux = Tmux::start("preview", &command(&args, &logs));
    tmux.wait_for("preview (half blocks)");
    tmux.wait_until("half blocks drawn", |s| s.matches(['▀', '▄']).count() > 100);
    tmux.keys("v");
    tmux.wait_for("skeleton");
    tmux.keys("v");
    tmux.wait_for("preview (half blocks)");
    // w writes the transcript so far beside --transcript, and says where.
    tmux.keys("w");
    tmux.wait_for("written to");
    let written: Vec<String> = files_in(dir.path())
        .into_iter()
        .filter(|n| n.starts_with("signtop-transcript-"))
        .collect();
    assert_eq!(written.len(), 1, "{:?}", files_in(dir.path()));
    tmux.keys("q");
    tmux.wait_for("EXITED rc=0");
}

//! The command line as a user meets it: help, errors, and `inspect` on real data.
#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use predicates::prelude::*;

fn signtop() -> Command {
    let mut cmd = Command::cargo_bin("signtop").unwrap();
    cmd.arg("--log-file").arg(log_file());
    cmd
}

/// Where these tests' runs log.
fn log_file() -> std::path::PathBuf {
    std::env::temp_dir().join("signtop-cli-tests.log")
}

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/signpose");

#[test]
fn help_lists_the_subcommands() {
    signtop()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("inspect"));
}

#[test]
fn inspect_summarises_signpose_data() {
    signtop()
        .arg("inspect")
        .arg(format!("{SHARED}/bp_hp6_dev_X.npy"))
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "shape=[288, 30, 258] layout=258 frames=8640",
        ));
}

#[test]
fn inspect_names_a_missing_file() {
    signtop()
        .args(["inspect", "/nonexistent/keypoints.npy"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("/nonexistent/keypoints.npy"));
}

#[test]
fn inspect_rejects_an_integer_array() {
    // The labels file is uint8: a clear error, not a panic.
    signtop()
        .arg("inspect")
        .arg(format!("{SHARED}/bp_hp6_dev_y.npy"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("float32"));
}

/// What `signtop bench` prints for `frames` frames of the camera fixture.
fn bench_camera_frames(frames: &str) -> String {
    bench_camera(&["--frames", frames])
}

/// What `signtop bench --input <the camera fixture> <options>` prints.
fn bench_camera(options: &[&str]) -> String {
    let input = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/frames/camera");
    let out = signtop()
        .args(["bench", "--input", input])
        .args(options)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

/// The number that follows `prefix` at the start of a line of `text`.
fn number_after(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{text}"))
}

#[test]
fn bench_prints_every_stage_with_percentiles() {
    let text = bench_camera_frames("3");
    assert!(
        text.contains("p50") && text.contains("p95") && text.contains("p99"),
        "{text}"
    );
    for stage in [
        "decode",
        "pose detect",
        "pose landmarks",
        "hand recrop",
        "hands",
        "total",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(stage)),
            "no {stage} row in:\n{text}"
        );
    }
    assert!(text.contains("found: frames=3"), "{text}");
    // The decoder's one-off start is set apart from the per-frame decode.
    let start = number_after(&text, "decoder start: ");
    assert!(start >= 0.0, "{text}");
}

#[test]
fn bench_pipelined_and_paired_say_what_they_timed() {
    let pipelined = bench_camera(&["--frames", "3", "--pipelined"]);
    assert!(
        pipelined.lines().any(|l| l.starts_with("interval ")),
        "{pipelined}"
    );
    assert!(
        pipelined.contains("pipelined: each frame's pose"),
        "{pipelined}"
    );
    let paired = bench_camera(&["--paired", "2"]);
    assert!(paired.contains("2 pairs of passes"), "{paired}");
    assert!(
        paired.contains("pipelined / one at a time: median"),
        "{paired}"
    );
    let input = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/frames/camera");
    signtop()
        .args(["bench", "--input", input, "--paired", "2", "--pipelined"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("cannot be used with"));
}

#[test]
fn model_runs_reuse_their_memory_instead_of_faulting_it_in_again() {
    // glibc's default malloc unmapped every large tensor tract freed: ~3000
    // page faults a frame on these frames; reused, a few dozen.
    let text = bench_camera_frames("10");
    let faults = number_after(&text, "page faults: ");
    assert!(faults < 500.0, "{faults} page faults a frame");
}

#[test]
fn the_models_memory_is_in_huge_pages_where_the_kernel_gives_them() {
    // signtop's main asks for its heap in transparent huge pages; a kernel
    // with them on ("always" or "madvise", the default) hands them out.
    let setting =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    let text = bench_camera_frames("10");
    let mib = number_after(&text, "huge pages: ");
    if setting.contains("[always]") || setting.contains("[madvise]") {
        assert!(mib >= 16.0, "{mib} MiB in huge pages ({setting})");
    }
}

#[test]
fn bench_piped_into_a_reader_that_goes_ends_quietly() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    let input = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/frames/camera");
    // `signtop bench --models | head -1`: the reader takes the header line
    // and goes; the table's next line then has nowhere to go.
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("signtop"))
        .arg("--log-file")
        .arg(log_file())
        .args(["bench", "--models", "--frames", "2", "--input", input])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("p50"), "{first}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Ended by SIGPIPE as `head`'s writers are, not by a panic.
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {stderr}",
        out.status
    );
}

#[test]
fn bench_names_a_missing_input() {
    signtop()
        .args(["bench", "--input", "/nonexistent/clip.gif"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("/nonexistent/clip.gif"));
}

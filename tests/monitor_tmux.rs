//! End to end in a real terminal: the monitor binary in a tmux pane on a
//! replayed clip; keys (?, space, +, q) change the screen as they should, and
//! after q (and after SIGTERM) the terminal is back to normal (alternate screen
//! left, cursor shown).
#![allow(clippy::unwrap_used)]

mod common;
mod tmux_support;

use std::process::Command;
use std::time::Duration;

use tmux_support::Tmux;

const CLIP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/media/cow_correct.gif"
);
const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models");
const SIGN_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/signs.onnx");

#[test]
fn keys_work_and_the_terminal_is_restored() {
    let logs = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_signtop");
    let command = format!(
        "{bin} --input {CLIP} --models {MODELS} --sign-model {SIGN_MODEL} --log-file {}; echo EXITED rc=$?; sleep 60",
        logs.path().join("log").display()
    );
    let tmux = Tmux::start("keys", &command);
    tmux.wait_for("performance");
    assert_eq!(
        tmux.format("#{alternate_on}"),
        "1",
        "the dashboard uses the alternate screen"
    );

    tmux.keys("?");
    let help = tmux.wait_for("freeze / unfreeze");
    assert!(
        help.contains("clear the transcript") && help.contains("mirror"),
        "{help}"
    );
    tmux.keys("?");
    tmux.keys("Space");
    tmux.wait_for("FROZEN");
    tmux.keys("Space");
    tmux.keys("+");
    tmux.wait_for("threshold 0.75");

    // Smaller terminals shed panels; a tiny one says it is too small.
    tmux.resize(60, 16);
    tmux.wait_until("transcript without performance", |s| {
        s.contains("transcript") && !s.contains("performance")
    });
    tmux.resize(30, 6);
    tmux.wait_for("too small");
    tmux.resize(120, 36);
    tmux.wait_for("performance");

    tmux.keys("q");
    assert_exited_cleanly(&tmux);
}

/// The monitor exited with 0 and left the terminal as it found it.
fn assert_exited_cleanly(tmux: &Tmux) {
    let after = tmux.wait_for("EXITED rc=0");
    assert!(
        !after.contains("performance"),
        "dashboard left on screen:\n{after}"
    );
    assert_eq!(tmux.format("#{alternate_on}"), "0", "alternate screen left");
    assert_eq!(tmux.format("#{cursor_flag}"), "1", "cursor visible again");
}

fn command(extra: &str, logs: &tempfile::TempDir) -> String {
    let bin = env!("CARGO_BIN_EXE_signtop");
    format!(
        "{bin} {extra} --input {CLIP} --models {MODELS} --sign-model {SIGN_MODEL} --log-file {}; echo EXITED rc=$?; sleep 60",
        logs.path().join("log").display()
    )
}

#[test]
fn kiosk_ignores_keys_but_quit() {
    let logs = tempfile::tempdir().unwrap();
    let tmux = Tmux::start("kiosk", &command("--kiosk", &logs));
    tmux.wait_for("q quit");
    tmux.keys("?");
    tmux.keys("Space");
    std::thread::sleep(Duration::from_millis(300));
    let screen = tmux.screen();
    assert!(
        !screen.contains("freeze / unfreeze") && !screen.contains("FROZEN"),
        "{screen}"
    );
    tmux.keys("q");
    tmux.wait_for("EXITED rc=0");
}

#[test]
fn no_color_draws_without_colours() {
    let logs = tempfile::tempdir().unwrap();
    let tmux = Tmux::start("nocolor", &command("--no-color", &logs));
    tmux.wait_for("performance");
    let escapes = tmux.screen_with_escapes();
    // SGR colour parameters: 30-37/90-97 foreground, 38 extended.
    let coloured = escapes.split("\x1b[").skip(1).any(|sgr| {
        let params = sgr.split('m').next().unwrap_or("");
        params
            .split(';')
            .any(|p| matches!(p.parse::<u8>(), Ok(30..=38 | 90..=97)))
    });
    assert!(!coloured, "colour escapes found:\n{escapes}");
    tmux.keys("q");
    tmux.wait_for("EXITED rc=0");
}

#[test]
fn sigterm_ends_the_dashboard_and_restores_the_terminal() {
    let logs = tempfile::tempdir().unwrap();
    let tmux = Tmux::start("sigterm", &command("", &logs));
    tmux.wait_for("performance");
    assert_eq!(tmux.format("#{alternate_on}"), "1");
    let pid = tmux_support::monitor_pid(&logs);
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    assert_exited_cleanly(&tmux);
}

//! A real terminal for end-to-end tests: a tmux server of its own running
//! one command in a pane, with keys, resizes and screen captures.
#![allow(clippy::unwrap_used, dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::system::{self, PROCPS, TMUX};

/// A tmux server of its own, killed when dropped.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn start(name: &str, command: &str) -> Tmux {
        // tmux, and pgrep and kill for the SIGTERM tests.
        system::require(&[TMUX, PROCPS]);
        let socket = format!("signtop-test-{name}-{}", std::process::id());
        let tmux = Tmux { socket };
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "120",
            "-y",
            "36",
            command,
        ]);
        tmux
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "t"])
    }

    /// The screen with its colour and attribute escapes.
    pub fn screen_with_escapes(&self) -> String {
        self.run(&["capture-pane", "-p", "-e", "-t", "t"])
    }

    pub fn resize(&self, width: u16, height: u16) {
        let (w, h) = (width.to_string(), height.to_string());
        self.run(&["resize-window", "-t", "t", "-x", &w, "-y", &h]);
    }

    pub fn keys(&self, keys: &str) {
        self.run(&["send-keys", "-t", "t", keys]);
    }

    pub fn format(&self, var: &str) -> String {
        self.run(&["display-message", "-p", "-t", "t", var])
            .trim()
            .to_string()
    }

    /// Waits until the screen contains `text`.
    pub fn wait_for(&self, text: &str) -> String {
        self.wait_until(text, |screen| screen.contains(text))
    }

    /// Waits until `ready` holds for the screen (`what` names it in the failure).
    pub fn wait_until(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "never saw {what:?}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .status();
    }
}

/// The pid of the signtop started with `--log-file LOGS/log`.
pub fn monitor_pid(logs: &tempfile::TempDir) -> String {
    let pattern = format!("log-file {}", logs.path().join("log").display());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("pgrep")
            .args(["-f", "-n", &pattern])
            .output()
            .unwrap();
        let pids = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // pgrep -f also matches the pane's shell, whose command line holds
        // the same text; the monitor is the shell's child, started last (-n).
        if !pids.is_empty() {
            return pids;
        }
        assert!(Instant::now() < deadline, "no process matches {pattern}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

//! The dashboard's state and what each key does to it: pure data, no terminal,
//! so every behaviour is testable.

use std::collections::VecDeque;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::landmarks::Keypoints;
use crate::pipeline::{Classified, MetricsSnapshot, SignEvent};

/// Threshold change per `+`/`-`.
pub const THRESHOLD_STEP: f32 = 0.05;

/// What the caller must do after a key.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    /// Nothing beyond redrawing.
    None,
    /// Leave the dashboard.
    Quit,
    /// Use this decision threshold from now on.
    SetThreshold(f32),
    /// Mirror the keypoints (or not) from now on.
    SetMirror(bool),
    /// Show the camera preview (true) or the skeleton.
    SetPreview(bool),
    /// Load the sign model again from its file.
    ReloadModel,
    /// Write the transcript so far to a file.
    WriteTranscript,
}

/// A message under the header: what a reload or a key did.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    /// What happened.
    pub text: String,
    /// An error (e.g. a new model refused) rather than news.
    pub error: bool,
}

/// One sign in the on-screen transcript.
#[derive(Clone, Debug, PartialEq)]
pub struct TranscriptLine {
    /// The sign.
    pub label: String,
    /// Its probability.
    pub probability: f32,
    /// When it was decided, since the monitor started.
    pub at: Duration,
}

/// The source as shown in the header.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceLine {
    /// Device or file.
    pub description: String,
    /// Pixel format or media kind.
    pub format: String,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
}

/// Settings the dashboard starts with.
#[derive(Clone, Debug)]
pub struct AppOptions {
    /// Decision threshold.
    pub threshold: f32,
    /// Mirror on.
    pub mirror: bool,
    /// Kiosk mode: only quit works, large bars.
    pub kiosk: bool,
    /// Signs kept on screen.
    pub transcript_length: usize,
    /// Camera preview instead of the skeleton.
    pub preview: bool,
}

/// Everything the dashboard draws.
#[derive(Clone, Debug)]
pub struct App {
    /// Class labels.
    pub labels: Vec<String>,
    /// Class probabilities of the last window shown (empty until the window fills).
    pub probabilities: Vec<f32>,
    /// The sign being held (highlighted).
    pub held: Option<usize>,
    /// Keypoints of the last frame shown.
    pub keypoints: Keypoints,
    /// Recognised signs, newest first.
    pub transcript: VecDeque<TranscriptLine>,
    /// Signs decided while frozen, shown on unfreeze.
    pending: Vec<TranscriptLine>,
    /// Signs kept.
    pub transcript_length: usize,
    /// Pipeline figures.
    pub metrics: MetricsSnapshot,
    /// The source.
    pub source: SourceLine,
    /// Decision threshold.
    pub threshold: f32,
    /// Display frozen.
    pub frozen: bool,
    /// Mirroring on.
    pub mirror: bool,
    /// Help popup shown.
    pub show_help: bool,
    /// Kiosk mode.
    pub kiosk: bool,
    /// The input ended (replay finished).
    pub ended: bool,
    /// A stage failed ("stage: what happened"): the dashboard keeps what it
    /// had and says why it stopped; the error is printed again on exit.
    pub failure: Option<String>,
    /// Quit was asked for.
    pub quit: bool,
    /// Camera preview shown instead of the skeleton.
    pub preview: bool,
    /// The last reload or file written (an error stays until the next news).
    pub notice: Option<Notice>,
    /// Every sign since the start (or the last clear), for writing the transcript.
    pub history: Vec<crate::monitor::transcript_log::TranscriptRecord>,
    /// When the monitor started (CLOCK_MONOTONIC), for transcript times.
    pub started: Duration,
}

impl App {
    /// A fresh dashboard.
    pub fn new(labels: Vec<String>, source: SourceLine, options: &AppOptions) -> App {
        App {
            labels,
            probabilities: Vec::new(),
            held: None,
            keypoints: Keypoints::default(),
            transcript: VecDeque::new(),
            pending: Vec::new(),
            transcript_length: options.transcript_length.max(1),
            metrics: MetricsSnapshot::default(),
            source,
            threshold: options.threshold.clamp(0.0, 1.0),
            frozen: false,
            mirror: options.mirror,
            show_help: false,
            kiosk: options.kiosk,
            ended: false,
            failure: None,
            quit: false,
            preview: options.preview,
            notice: None,
            history: Vec::new(),
            started: Duration::ZERO,
        }
    }

    /// Handles one key; in kiosk mode only quit works.
    pub fn on_key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        let ctrl_c =
            key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
        if key.code == KeyCode::Char('q') || ctrl_c {
            self.quit = true;
            return Action::Quit;
        }
        if self.kiosk {
            return Action::None;
        }
        match key.code {
            KeyCode::Char('?') => self.show_help = !self.show_help,
            KeyCode::Esc => self.show_help = false,
            KeyCode::Char(' ') => self.toggle_freeze(),
            KeyCode::Char('+') | KeyCode::Char('=') => return self.nudge_threshold(1.0),
            KeyCode::Char('-') | KeyCode::Char('_') => return self.nudge_threshold(-1.0),
            KeyCode::Char('c') => {
                self.transcript.clear();
                self.pending.clear();
                self.history.clear();
            }
            KeyCode::Char('v') => {
                self.preview = !self.preview;
                return Action::SetPreview(self.preview);
            }
            KeyCode::Char('l') => return Action::ReloadModel,
            KeyCode::Char('w') => return Action::WriteTranscript,
            KeyCode::Char('m') => {
                self.mirror = !self.mirror;
                return Action::SetMirror(self.mirror);
            }
            _ => {}
        }
        Action::None
    }

    fn toggle_freeze(&mut self) {
        self.frozen = !self.frozen;
        if !self.frozen {
            for line in std::mem::take(&mut self.pending) {
                self.push_line(line);
            }
        }
    }

    fn nudge_threshold(&mut self, direction: f32) -> Action {
        let steps = (self.threshold / THRESHOLD_STEP).round() + direction;
        self.threshold = (steps * THRESHOLD_STEP).clamp(0.0, 1.0);
        // Keep two decimals exact so the display never shows 0.7000001.
        self.threshold = (self.threshold * 100.0).round() / 100.0;
        Action::SetThreshold(self.threshold)
    }

    /// Shows a classified frame (ignored while frozen).
    pub fn on_classified(&mut self, classified: &Classified) {
        if self.frozen {
            return;
        }
        // A window of the model before a reload has another class count: skipped.
        if let Some(p) = classified
            .probabilities
            .as_ref()
            .filter(|p| p.len() == self.labels.len())
        {
            self.probabilities.clone_from(p);
        }
        self.held = classified.held;
        self.keypoints.clone_from(&classified.keypoints);
    }

    /// A new sign model runs: its labels from now on.
    pub fn on_new_labels(&mut self, labels: Vec<String>) {
        self.labels = labels;
        self.probabilities.clear();
        self.held = None;
    }

    /// Shows `text` under the header.
    pub fn notify(&mut self, text: String, error: bool) {
        self.notice = Some(Notice { text, error });
    }

    /// Adds a recognised sign (held back while frozen).
    pub fn on_sign(&mut self, sign: &SignEvent) {
        self.history
            .push(crate::monitor::transcript_log::TranscriptRecord::of(sign));
        let line = TranscriptLine {
            label: sign.label.clone(),
            probability: sign.probability,
            at: sign.decided.saturating_sub(self.started),
        };
        if self.frozen {
            self.pending.push(line);
        } else {
            self.push_line(line);
        }
    }

    fn push_line(&mut self, line: TranscriptLine) {
        self.transcript.push_front(line);
        self.transcript.truncate(self.transcript_length);
    }

    /// Updates the pipeline figures (kept as they were while frozen).
    pub fn on_metrics(&mut self, metrics: MetricsSnapshot) {
        if !self.frozen {
            self.metrics = metrics;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    fn app(kiosk: bool) -> App {
        let options = AppOptions {
            threshold: 0.7,
            mirror: false,
            kiosk,
            transcript_length: 3,
            preview: false,
        };
        App::new(
            vec!["hello".into(), "thanks".into()],
            SourceLine::default(),
            &options,
        )
    }

    fn sign(label: &str, secs: u64) -> SignEvent {
        SignEvent {
            sequence: 0,
            captured: Duration::from_secs(secs),
            decided: Duration::from_secs(secs),
            index: 0,
            label: label.into(),
            probability: 0.9,
            probabilities: vec![0.9, 0.1],
        }
    }

    #[test]
    fn threshold_steps_and_clamps() {
        let mut a = app(false);
        assert_eq!(a.on_key(key('+')), Action::SetThreshold(0.75));
        assert_eq!(a.on_key(key('-')), Action::SetThreshold(0.7));
        for _ in 0..30 {
            a.on_key(key('+'));
        }
        assert_eq!(a.threshold, 1.0);
        for _ in 0..30 {
            a.on_key(key('-'));
        }
        assert_eq!(a.threshold, 0.0);
    }

    #[test]
    fn kiosk_ignores_everything_but_quit() {
        let mut a = app(true);
        for c in ['?', ' ', '+', 'c', 'm', 'v', 'l', 'w'] {
            assert_eq!(a.on_key(key(c)), Action::None);
        }
        assert!(!a.show_help && !a.frozen && !a.mirror);
        assert_eq!(a.threshold, 0.7);
        assert_eq!(a.on_key(key('q')), Action::Quit);
        assert!(a.quit);
    }

    #[test]
    fn ctrl_c_quits() {
        let mut a = app(false);
        let k = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(a.on_key(k), Action::Quit);
    }

    #[test]
    fn transcript_newest_first_bounded_and_cleared() {
        let mut a = app(false);
        for (i, l) in ["a", "b", "c", "d"].iter().enumerate() {
            a.on_sign(&sign(l, i as u64));
        }
        let labels: Vec<_> = a.transcript.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, ["d", "c", "b"]);
        a.on_key(key('c'));
        assert!(a.transcript.is_empty());
    }

    #[test]
    fn freeze_holds_the_display_and_keeps_signs() {
        let mut a = app(false);
        a.on_key(key(' '));
        assert!(a.frozen);
        let classified = Classified {
            sequence: 1,
            captured: Duration::ZERO,
            keypoints: Keypoints::default(),
            probabilities: Some(vec![0.2, 0.8]),
            held: Some(1),
        };
        a.on_classified(&classified);
        a.on_sign(&sign("hello", 1));
        assert!(a.probabilities.is_empty() && a.transcript.is_empty());
        a.on_key(key(' '));
        assert_eq!(a.transcript.len(), 1, "signs decided while frozen are kept");
        a.on_classified(&classified);
        assert_eq!(a.probabilities, vec![0.2, 0.8]);
        assert_eq!(a.held, Some(1));
    }

    #[test]
    fn preview_reload_and_write_keys() {
        let mut a = app(false);
        assert_eq!(a.on_key(key('v')), Action::SetPreview(true));
        assert_eq!(a.on_key(key('v')), Action::SetPreview(false));
        assert_eq!(a.on_key(key('l')), Action::ReloadModel);
        a.on_sign(&sign("hello", 1));
        assert_eq!(a.history.len(), 1);
        assert_eq!(a.on_key(key('w')), Action::WriteTranscript);
        a.on_key(key('c'));
        assert!(a.history.is_empty(), "clear empties what w writes too");
    }

    #[test]
    fn new_labels_drop_windows_of_the_old_model() {
        let mut a = app(false);
        a.on_new_labels(vec!["a".into(), "b".into(), "c".into()]);
        let old = Classified {
            sequence: 1,
            captured: Duration::ZERO,
            keypoints: Keypoints::default(),
            probabilities: Some(vec![0.2, 0.8]),
            held: None,
        };
        a.on_classified(&old);
        assert!(a.probabilities.is_empty());
        let new = Classified {
            probabilities: Some(vec![0.2, 0.3, 0.5]),
            ..old
        };
        a.on_classified(&new);
        assert_eq!(a.probabilities.len(), 3);
    }

    #[test]
    fn mirror_and_help_toggle() {
        let mut a = app(false);
        assert_eq!(a.on_key(key('m')), Action::SetMirror(true));
        a.on_key(key('?'));
        assert!(a.show_help);
        a.on_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
        assert!(!a.show_help);
    }
}

//! `signtop record`: takes of signs for training, from the camera or a
//! replay, through the monitor's own pipeline (every landmarked frame kept
//! in order). Each take is saved the moment it ends (`store`); a take in
//! progress when the user quits, a signal comes, the input ends or the
//! source fails is discarded, and said so; nothing finished is lost.
//! On a terminal a screen (`view`) with keys; headless (or stdout not a
//! terminal) JSON Lines of what was saved.

pub mod session;
pub mod store;
pub mod view;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use serde_json::{Value, json};

use crate::classify::{Sidecar, SignModel};
use crate::config::Settings;
use crate::landmarks::Layout;
use crate::monitor::{self, Live, MonitorArgs};
use crate::pipeline::{Classifier, Pipeline, Recv, StageFailure};
use crate::tui::app::Notice;
use crate::tui::{Preview, Theme, terminal};

use session::{Discard, Phase, Session, Step, Timing};
use store::{SavedTake, SourceFacts, Store};

/// Arguments of `signtop record`.
#[derive(Clone, Debug, clap::Args)]
pub struct RecordArgs {
    /// Folder the takes go to, as DIR/<sign>/take-NNN.npy with a .json
    /// sidecar each (created if needed; existing takes are kept).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// A sign to record; repeat for several, recorded in that order
    /// [default: the sign folders already in DIR, else the sign model's labels].
    #[arg(long = "sign", value_name = "NAME")]
    pub signs: Vec<String>,
    /// Takes to record of each sign.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub takes: u32,
    /// Length of each take in seconds (by the frames' capture times); a sign
    /// model's window is 3 s, and training refuses shorter takes.
    #[arg(long, default_value_t = 3.0, value_name = "S")]
    pub seconds: f64,
    /// Countdown before each take, in seconds.
    #[arg(long, default_value_t = 3.0, value_name = "S")]
    pub countdown: f64,
    /// A pause this long in the frames mid-take discards the take (it would
    /// not be one movement); raise it where landmarks come slowly.
    #[arg(long, default_value_t = session::DEFAULT_MAX_GAP.as_secs_f64(), value_name = "S")]
    pub max_gap: f64,
    /// Source, models, layout and display: the monitor's options.
    #[command(flatten)]
    pub monitor: MonitorArgs,
}

impl RecordArgs {
    fn timing(&self) -> anyhow::Result<Timing> {
        anyhow::ensure!(self.takes >= 1, "--takes {} must be at least 1", self.takes);
        anyhow::ensure!(
            self.seconds.is_finite() && self.seconds > 0.0 && self.seconds <= 600.0,
            "--seconds {} must be above 0 and at most 600",
            self.seconds
        );
        anyhow::ensure!(
            self.countdown.is_finite() && (0.0..=60.0).contains(&self.countdown),
            "--countdown {} must be 0 to 60 seconds",
            self.countdown
        );
        anyhow::ensure!(
            self.max_gap.is_finite() && self.max_gap > 0.0 && self.max_gap <= 600.0,
            "--max-gap {} must be above 0 and at most 600 seconds",
            self.max_gap
        );
        Ok(Timing {
            takes: self.takes,
            seconds: self.seconds,
            countdown: self.countdown,
            max_gap: Duration::from_secs_f64(self.max_gap),
        })
    }
}

/// The classifier stage of a recording: keeps the layout, recognises nothing
/// (a recording needs no sign model, and may be of signs no model knows).
struct NoSigns {
    layout: Layout,
}

impl Classifier for NoSigns {
    fn labels(&self) -> &[String] {
        &[]
    }
    fn layout(&self) -> Layout {
        self.layout
    }
    fn predict(&mut self, _: &[f32]) -> Result<Vec<f32>, StageFailure> {
        Ok(Vec::new())
    }
}

/// Runs `signtop record`.
pub fn run(args: &RecordArgs) -> anyhow::Result<()> {
    let timing = args.timing()?;
    let mut options = args.monitor.clone();
    // A replay's every frame goes into the takes, none dropped.
    options.every_frame = options.input.is_some();
    let settings = options.settings()?;
    let probe = Store::open(&args.out, settings.layout, SourceFacts::unknown())
        .with_context(|| format!("opening the recording folder {}", args.out.display()))?;
    let signs = choose_signs(args, &settings, &probe)?;
    let classifier = Box::new(NoSigns {
        layout: settings.layout,
    });
    let live = monitor::start(&options, &settings, classifier, true)?;
    let info = live.pipeline.source_info().clone();
    let store = Store::open(
        &args.out,
        settings.layout,
        SourceFacts {
            device: info.description.clone(),
            width: info.width,
            height: info.height,
        },
    )?;
    let before = signs.iter().map(|s| store.count(s)).collect();
    let recorder = Recorder {
        session: Session::new(signs, before, timing),
        store,
        saved: Vec::new(),
    };
    if live.headless {
        return headless(live, recorder);
    }
    let screen = view::Screen {
        out: args.out.display().to_string(),
        source: info.to_string(),
        aspect: if info.height == 0 {
            4.0 / 3.0
        } else {
            f64::from(info.width) / f64::from(info.height)
        },
        preview: settings.preview,
        ..view::Screen::default()
    };
    let theme = Theme::from_env(args.monitor.no_color);
    let preview = Preview::detect();
    on_screen(
        live,
        recorder,
        screen,
        theme,
        preview,
        settings.ui_refresh_hz,
    )
}

impl SourceFacts {
    fn unknown() -> SourceFacts {
        SourceFacts {
            device: String::new(),
            width: 0,
            height: 0,
        }
    }
}

/// `--sign`s, else the folder's sign folders, else the sign model's labels.
fn choose_signs(
    args: &RecordArgs,
    settings: &Settings,
    store: &Store,
) -> anyhow::Result<Vec<String>> {
    let mut signs = args.signs.clone();
    if signs.is_empty() {
        signs = store.existing_signs();
    }
    if signs.is_empty() {
        let sidecar = match &settings.sign_model {
            Some(model) => Sidecar::load_for(model),
            None => SignModel::built_in(settings.layout).map(|m| m.sidecar().clone()),
        };
        signs = sidecar.map(|s| s.labels).with_context(|| {
            format!(
                "no --sign given and none in {}: reading the sign model's labels",
                args.out.display()
            )
        })?;
    }
    let mut unique = Vec::new();
    for sign in signs {
        Store::check_sign(&sign)?;
        if !unique.contains(&sign) {
            unique.push(sign);
        }
    }
    Ok(unique)
}

/// What a step came to.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Saved(SavedTake),
    Discarded(Discard),
    Deleted(SavedTake),
    Failed(String),
}

impl Outcome {
    fn notice(&self) -> Notice {
        let (text, error) = match self {
            Outcome::Saved(t) => (
                format!(
                    "saved {}/{}.npy ({} frames, {:.1} s, {:.1} fps)",
                    t.sign, t.name, t.frames, t.seconds, t.fps
                ),
                false,
            ),
            Outcome::Discarded(d) => (discarded_text(d), true),
            Outcome::Deleted(t) => (format!("deleted {}/{}", t.sign, t.name), false),
            Outcome::Failed(e) => (e.clone(), true),
        };
        Notice { text, error }
    }

    fn json(&self) -> Value {
        match self {
            Outcome::Saved(t) => json!({
                "type": "take", "sign": t.sign, "take": t.name, "path": t.npy,
                "sidecar": t.sidecar, "frames": t.frames, "seconds": t.seconds, "fps": t.fps,
            }),
            Outcome::Discarded(d) => json!({
                "type": "discarded", "sign": d.sign, "frames": d.frames, "reason": d.reason,
            }),
            Outcome::Deleted(t) => json!({"type": "deleted", "sign": t.sign, "take": t.name}),
            Outcome::Failed(e) => json!({"type": "error", "error": e}),
        }
    }
}

fn discarded_text(d: &Discard) -> String {
    format!(
        "discarded the take in progress ({}, {} frames): {}",
        d.sign, d.frames, d.reason
    )
}

/// The session and the folder it saves to.
struct Recorder {
    session: Session,
    store: Store,
    saved: Vec<SavedTake>,
}

impl Recorder {
    /// Carries out what the session asked for.
    fn apply(&mut self, step: Step) -> Option<Outcome> {
        match step {
            Step::None => None,
            Step::Save { sign, frames } => match self.store.save(&sign, &frames) {
                Ok(take) => {
                    tracing::info!(?take, "take saved");
                    self.session.saved();
                    self.saved.push(take.clone());
                    Some(Outcome::Saved(take))
                }
                Err(err) => {
                    // Not saved: pause, so the user sees it before going on.
                    self.session.stop("not saved");
                    Some(Outcome::Failed(format!("take of {sign} not saved: {err}")))
                }
            },
            Step::Discarded(d) => {
                tracing::info!(?d, "take discarded");
                Some(Outcome::Discarded(d))
            }
            Step::DeleteLast => {
                let take = self.saved.pop()?;
                match self.store.delete(&take) {
                    Ok(()) => {
                        self.session.deleted();
                        Some(Outcome::Deleted(take))
                    }
                    Err(err) => {
                        self.saved.push(take);
                        Some(Outcome::Failed(format!("not deleted: {err}")))
                    }
                }
            }
        }
    }

    /// Feeds every landmarked frame waiting; the outcomes in order.
    fn feed(&mut self, pipeline: &Pipeline) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        for frame in pipeline.drain_landmarked() {
            let was_recording = matches!(self.session.phase, Phase::Recording { .. });
            let step = self.session.on_frame(frame);
            if !was_recording && matches!(self.session.phase, Phase::Recording { .. }) {
                tracing::info!(sign = self.session.sign(), "take started");
            }
            outcomes.extend(self.apply(step));
        }
        outcomes
    }

    /// Takes saved per sign this session, as JSON.
    fn counts(&self) -> Value {
        let s = &self.session;
        json!(
            s.signs
                .iter()
                .zip(&s.saved)
                .map(|(sign, n)| (sign.clone(), json!(n)))
                .collect::<serde_json::Map<_, _>>()
        )
    }
}

/// Why the pipeline ended, for the take it cut short.
fn end_reason(pipeline: &Pipeline, stopped: bool) -> String {
    match pipeline.failure() {
        Some(failure) => format!("the source failed ({failure})"),
        None if stopped => "stopped (signal or q)".to_string(),
        None => "the input ended".to_string(),
    }
}

/// Headless: starts at once, JSON Lines of each take saved or discarded,
/// then a summary; ends when every sign has its takes, the input ends, or a stop.
fn headless(live: Live, mut recorder: Recorder) -> anyhow::Result<()> {
    let Live { pipeline, stop, .. } = live;
    let mut out = std::io::stdout().lock();
    recorder.session.start();
    loop {
        let closed = matches!(
            pipeline.recv_newest(Duration::from_millis(20)),
            Recv::Closed
        ) && pipeline.is_finished();
        for outcome in recorder.feed(&pipeline) {
            writeln!(out, "{}", outcome.json())?;
            out.flush()?;
        }
        if closed || stop.is_requested() || recorder.session.phase == Phase::Done {
            break;
        }
    }
    let reason = end_reason(&pipeline, stop.is_requested());
    let step = recorder.session.stop(&reason);
    if let Some(outcome) = recorder.apply(step) {
        writeln!(out, "{}", outcome.json())?;
    }
    let failure = pipeline.failure();
    let finished = pipeline.finish();
    let mut summary = json!({
        "type": "summary",
        "dir": recorder.store.dir(),
        "takes": recorder.counts(),
        "complete": recorder.session.phase == Phase::Done,
    });
    if let Some(failure) = &failure {
        summary["error"] = json!(failure);
    }
    writeln!(out, "{summary}")?;
    out.flush()?;
    finished?;
    Ok(())
}

/// On a terminal: the screen and keys until q, a signal, or every take done and q.
fn on_screen(
    live: Live,
    mut recorder: Recorder,
    mut screen: view::Screen,
    theme: Theme,
    mut preview: Preview,
    refresh_hz: u32,
) -> anyhow::Result<()> {
    let Live { pipeline, stop, .. } = live;
    let mut last_discard = None;
    let shown = (|| -> anyhow::Result<()> {
        let mut term = terminal::TerminalGuard::enter()?;
        let budget = Duration::from_secs_f64(1.0 / f64::from(refresh_hz.max(1)));
        pipeline.controls().set_preview(screen.preview);
        let mut quit = false;
        while !quit && !stop.is_requested() {
            let tick = Instant::now();
            for outcome in recorder.feed(&pipeline) {
                screen.notice = Some(outcome.notice());
            }
            if let Some(c) = pipeline.take_newest() {
                screen.keypoints = c.keypoints;
            }
            if let Some(frame) = pipeline.take_preview() {
                preview.set_frame(frame);
            }
            screen.ended = pipeline.is_finished();
            screen.failure = pipeline.failure();
            if screen.ended || screen.failure.is_some() {
                let step = recorder.session.stop(&end_reason(&pipeline, false));
                if let Some(outcome) = recorder.apply(step) {
                    screen.notice = Some(outcome.notice());
                }
            }
            term.terminal()
                .draw(|f| view::draw(f, &recorder.session, &screen, theme, &mut preview))?;
            let until = Instant::now() + budget.saturating_sub(tick.elapsed());
            while event::poll(until.saturating_duration_since(Instant::now()))? {
                if let Event::Key(key) = event::read()? {
                    quit |= on_key(key, &mut recorder, &mut screen, &pipeline);
                }
                if quit {
                    break;
                }
            }
        }
        let reason = if quit { "quit" } else { "stopped by a signal" };
        let step = recorder.session.stop(reason);
        if let Some(Outcome::Discarded(d)) = recorder.apply(step) {
            last_discard = Some(d);
        }
        Ok(())
    })();
    let finished = pipeline.finish();
    // The terminal is back: what was kept, and what was not.
    println!("{}", summary_text(&recorder));
    if let Some(d) = &last_discard {
        println!("{}", discarded_text(d));
    }
    shown.context("drawing the recording screen")?;
    finished?;
    Ok(())
}

/// One key; true to quit.
fn on_key(
    key: KeyEvent,
    recorder: &mut Recorder,
    screen: &mut view::Screen,
    pipeline: &Pipeline,
) -> bool {
    if key.kind == KeyEventKind::Release {
        return false;
    }
    let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
    if key.code == KeyCode::Char('q') || ctrl_c {
        return true;
    }
    let step = match key.code {
        KeyCode::Char(' ') => recorder.session.toggle(),
        KeyCode::Char('n') => recorder.session.next_sign(),
        KeyCode::Char('d') => recorder.session.delete_last(),
        KeyCode::Char('v') => {
            screen.preview = !screen.preview;
            pipeline.controls().set_preview(screen.preview);
            Step::None
        }
        KeyCode::Char('?') => {
            screen.show_help = !screen.show_help;
            Step::None
        }
        KeyCode::Esc => {
            screen.show_help = false;
            Step::None
        }
        _ => Step::None,
    };
    if let Some(outcome) = recorder.apply(step) {
        screen.notice = Some(outcome.notice());
    }
    false
}

/// "saved 3 takes in DIR: Cow 2, Bird 1".
fn summary_text(recorder: &Recorder) -> String {
    let s = &recorder.session;
    let per_sign: Vec<String> = s
        .signs
        .iter()
        .zip(&s.saved)
        .map(|(sign, n)| format!("{sign} {n}"))
        .collect();
    format!(
        "saved {} takes in {}: {}",
        s.total_saved(),
        recorder.store.dir().display(),
        per_sign.join(", ")
    )
}

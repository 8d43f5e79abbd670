//! The dashboard: app state, widgets, layout, terminal set-up and restore,
//! and the frame-driven loop that feeds it from a running pipeline.

pub mod app;
pub mod bars;
pub mod preview;
pub mod skeleton;
pub mod terminal;
pub mod theme;
pub mod view;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event};

use crate::monitor::reload::{ModelEvent, ModelWatcher};
use crate::monitor::transcript_log::{self, TranscriptLog, TranscriptRecord};
use crate::pipeline::{Pipeline, StopFlag};

pub use app::{Action, App, AppOptions, SourceLine};
pub use preview::Preview;
pub use theme::Theme;

/// What the dashboard works with besides the pipeline and its state.
pub struct Services {
    /// Draws the camera preview.
    pub preview: Preview,
    /// Reloads the sign model (None: no reloading).
    pub watcher: Option<ModelWatcher>,
    /// `--transcript FILE`: each decision appended.
    pub transcript: Option<TranscriptLog>,
    /// Where `w` writes the transcript so far.
    pub snapshot_dir: PathBuf,
}

/// Runs the dashboard until q, a signal, or an error; the terminal is
/// restored on every way out (the guard, the error path, the panic hook).
pub fn run(
    pipeline: &Pipeline,
    app: &mut App,
    theme: Theme,
    refresh_hz: u32,
    stop: &StopFlag,
    services: &mut Services,
) -> std::io::Result<()> {
    let mut term = terminal::TerminalGuard::enter()?;
    let budget = Duration::from_secs_f64(1.0 / f64::from(refresh_hz.max(1)));
    app.started = pipeline.started();
    pipeline.controls().set_preview(app.preview);
    while !app.quit && !stop.is_requested() {
        let tick = Instant::now();
        for sign in pipeline.drain_signs() {
            app.on_sign(&sign);
            transcript_log::append_to(&mut services.transcript, &TranscriptRecord::of(&sign));
        }
        if let Some(watcher) = &services.watcher {
            for event in watcher.drain_events() {
                show_model_event(app, event);
            }
        }
        let latest = pipeline.take_newest();
        if let Some(c) = &latest {
            app.on_classified(c);
        }
        app.ended = pipeline.is_finished();
        // The pipeline keeps the first failure, so this never changes once set.
        app.failure = pipeline.failure();
        app.on_metrics(pipeline.snapshot());
        // The display's cost: taking the preview frame, encoding and drawing.
        let draw_start = Instant::now();
        if let Some(frame) = pipeline.take_preview().filter(|_| !app.frozen) {
            services.preview.set_frame(frame);
        }
        term.terminal()
            .draw(|f| view::draw(f, app, theme, &mut services.preview))?;
        if let Some(c) = latest {
            pipeline.record_display(draw_start.elapsed(), c.captured);
        }
        handle_input(
            pipeline,
            app,
            services,
            budget.saturating_sub(tick.elapsed()),
        )?;
    }
    Ok(())
}

/// A reload's outcome under the header; new labels go to the bars.
pub fn show_model_event(app: &mut App, event: ModelEvent) {
    match event {
        ModelEvent::Loaded { path, labels } => {
            app.notify(
                format!(
                    "sign model reloaded from {} ({} signs)",
                    path.display(),
                    labels.len()
                ),
                false,
            );
            app.on_new_labels(labels);
        }
        ModelEvent::Failed { path, error } => app.notify(
            format!(
                "{} not loaded: {error}; the old model keeps running",
                path.display()
            ),
            true,
        ),
    }
}

/// Reads keys until the frame budget is spent (or quit).
fn handle_input(
    pipeline: &Pipeline,
    app: &mut App,
    services: &mut Services,
    mut remaining: Duration,
) -> std::io::Result<()> {
    let until = Instant::now() + remaining;
    while event::poll(remaining)? {
        if let Event::Key(key) = event::read()? {
            match app.on_key(key) {
                Action::Quit => return Ok(()),
                Action::SetThreshold(t) => pipeline.controls().set_threshold(t),
                Action::SetMirror(on) => pipeline.controls().set_mirror(on),
                Action::SetPreview(on) => pipeline.controls().set_preview(on),
                Action::ReloadModel => match &services.watcher {
                    Some(watcher) => {
                        watcher.request_reload();
                        app.notify("reloading the sign model...".into(), false);
                    }
                    None => app.notify("no sign model to reload".into(), true),
                },
                Action::WriteTranscript => {
                    match transcript_log::write_snapshot(&services.snapshot_dir, &app.history) {
                        Ok(path) => app.notify(
                            format!(
                                "transcript ({} signs) written to {}",
                                app.history.len(),
                                path.display()
                            ),
                            false,
                        ),
                        Err(err) => app.notify(format!("{err:#}"), true),
                    }
                }
                Action::None => {}
            }
        }
        remaining = until.saturating_duration_since(Instant::now());
    }
    Ok(())
}

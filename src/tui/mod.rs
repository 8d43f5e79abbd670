//! The dashboard: app state, widgets, layout, terminal set-up and restore,
//! and the frame-driven loop that feeds it from a running pipeline.

pub mod app;
pub mod bars;
pub mod skeleton;
pub mod terminal;
pub mod theme;
pub mod view;

use std::time::{Duration, Instant};

use crossterm::event::{self, Event};

use crate::pipeline::{Pipeline, StopFlag};

pub use app::{Action, App, AppOptions, SourceLine};
pub use theme::Theme;

/// Runs the dashboard until q, a signal, or an error; the terminal is
/// restored on every way out (the guard, the error path, the panic hook).
pub fn run(
    pipeline: &Pipeline,
    app: &mut App,
    theme: Theme,
    refresh_hz: u32,
    stop: &StopFlag,
) -> std::io::Result<()> {
    let mut term = terminal::TerminalGuard::enter()?;
    let budget = Duration::from_secs_f64(1.0 / f64::from(refresh_hz.max(1)));
    app.started = pipeline.started();
    while !app.quit && !stop.is_requested() {
        let tick = Instant::now();
        for sign in pipeline.drain_signs() {
            app.on_sign(&sign);
        }
        let latest = pipeline.take_newest();
        if let Some(c) = &latest {
            app.on_classified(c);
        }
        app.ended = pipeline.is_finished();
        // The pipeline keeps the first failure, so this never changes once set.
        app.failure = pipeline.failure();
        app.on_metrics(pipeline.snapshot());
        let draw_start = Instant::now();
        term.terminal().draw(|f| view::draw(f, app, theme))?;
        if let Some(c) = latest {
            pipeline.record_display(draw_start.elapsed(), c.captured);
        }
        handle_input(pipeline, app, budget.saturating_sub(tick.elapsed()))?;
    }
    Ok(())
}

/// Reads keys until the frame budget is spent (or quit).
fn handle_input(
    pipeline: &Pipeline,
    app: &mut App,
    mut remaining: Duration,
) -> std::io::Result<()> {
    let until = Instant::now() + remaining;
    while event::poll(remaining)? {
        if let Event::Key(key) = event::read()? {
            match app.on_key(key) {
                Action::Quit => return Ok(()),
                Action::SetThreshold(t) => pipeline.controls().set_threshold(t),
                Action::SetMirror(on) => pipeline.controls().set_mirror(on),
                Action::None => {}
            }
        }
        remaining = until.saturating_duration_since(Instant::now());
    }
    Ok(())
}

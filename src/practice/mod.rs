//! `signtop practice`: SignPose's game on the monitor's pipeline. A random
//! target sign (`game`), the decisions of the sign model against it, a
//! CORRECT flash, score and streak (`view`), a summary at the end; headless
//! (or stdout not a terminal) JSON Lines, `--seed` fixing the target order,
//! so a replay plays the same game every time.

pub mod game;
pub mod view;

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use serde_json::{Value, json};

use crate::monitor::transcript_log::{self, TranscriptRecord};
use crate::monitor::{self, Live, MonitorArgs};
use crate::pipeline::{Pipeline, Recv};
use crate::tui::{Theme, terminal};

use game::{FLASH, Game, RoundEnd};

/// SignPose's idle class: not a sign to practise unless asked for.
const IDLE_CLASS: &str = "No Action";

/// Arguments of `signtop practice`.
#[derive(Clone, Debug, clap::Args)]
pub struct PracticeArgs {
    /// Signs to practise, comma-separated, from the sign model's labels
    /// [default: every label but "No Action"].
    #[arg(long, value_delimiter = ',', value_name = "A,B,...")]
    pub signs: Vec<String>,
    /// Rounds to play [default: until q or the end of the input].
    #[arg(long, value_name = "N")]
    pub rounds: Option<u32>,
    /// Seed of the target order [default: from the clock].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Source, models, decision settings and display: the monitor's options.
    #[command(flatten)]
    pub monitor: MonitorArgs,
}

/// Runs `signtop practice`.
pub fn run(args: &PracticeArgs) -> anyhow::Result<()> {
    if args.rounds == Some(0) {
        anyhow::bail!("--rounds 0: there would be nothing to play");
    }
    let settings = args.monitor.settings()?;
    let classifier = monitor::open_sign_model(&settings)?;
    let signs = choose_signs(&args.signs, classifier.labels())?;
    let seed = args.seed.unwrap_or_else(clock_seed);
    tracing::info!(?signs, seed, "practice");
    let live = monitor::start(&args.monitor, &settings, classifier, false)?;
    let game = Game::new(signs, args.rounds, seed);
    let transcript = monitor::open_transcript(&args.monitor)?;
    let mut play = Play {
        game,
        transcript,
        screen: view::Screen {
            labels: live.pipeline.labels().to_vec(),
            threshold: settings.threshold,
            kiosk: args.monitor.kiosk,
            ..view::Screen::default()
        },
    };
    if live.headless {
        return headless(live, &mut play, seed);
    }
    let theme = Theme::from_env(args.monitor.no_color);
    on_screen(live, &mut play, theme, settings.ui_refresh_hz)
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `--signs`, each a label of the model; by default every label but the idle class.
fn choose_signs(asked: &[String], labels: &[String]) -> anyhow::Result<Vec<String>> {
    if asked.is_empty() {
        let signs: Vec<String> = labels
            .iter()
            .filter(|l| *l != IDLE_CLASS)
            .cloned()
            .collect();
        anyhow::ensure!(!signs.is_empty(), "the sign model has no signs to practise");
        return Ok(signs);
    }
    let mut signs = Vec::new();
    for sign in asked.iter().map(|s| s.trim()) {
        let found = labels
            .iter()
            .find(|l| l.eq_ignore_ascii_case(sign))
            .with_context(|| {
                format!(
                    "--signs: {sign:?} is not a sign of the model (it knows {})",
                    labels.join(", ")
                )
            })?;
        if !signs.contains(found) {
            signs.push(found.clone());
        }
    }
    Ok(signs)
}

/// The game and what goes with it.
struct Play {
    game: Game,
    transcript: Option<transcript_log::TranscriptLog>,
    screen: view::Screen,
}

impl Play {
    /// Feeds the newest frame and every decision; the rounds that ended.
    fn feed(
        &mut self,
        pipeline: &Pipeline,
        newest: Option<crate::pipeline::Classified>,
    ) -> Vec<RoundEnd> {
        if let Some(c) = newest {
            if let Some(p) = c
                .probabilities
                .filter(|p| p.len() == self.screen.labels.len())
            {
                self.screen.probabilities = p;
            }
            self.game.on_frame(c.captured);
        }
        let mut ends = Vec::new();
        for sign in pipeline.drain_signs() {
            transcript_log::append_to(&mut self.transcript, &TranscriptRecord::of(&sign));
            ends.extend(self.game.on_decision(&sign.label, sign.captured));
        }
        ends
    }
}

/// The JSON line of a round's end.
fn round_line(end: &RoundEnd, game: &Game) -> Value {
    match end {
        RoundEnd::Correct {
            round,
            sign,
            seconds,
        } => json!({
            "type": "correct", "round": round, "sign": sign,
            "seconds": round3(*seconds), "score": game.score, "streak": game.streak,
        }),
        RoundEnd::Skipped { round, sign } => json!({
            "type": "skipped", "round": round, "sign": sign, "score": game.score,
        }),
    }
}

fn target_line(game: &Game) -> Option<Value> {
    Some(json!({"type": "target", "round": game.round, "sign": game.target_sign()?}))
}

/// Per sign: tries, right, mean seconds to recognise; score and streaks.
fn summary_line(game: &Game, seed: u64) -> Value {
    let signs: serde_json::Map<String, Value> = game
        .signs
        .iter()
        .zip(&game.stats)
        .map(|(sign, s)| {
            let mean = s.mean_seconds().map(round3);
            (
                sign.clone(),
                json!({"tries": s.tries, "right": s.right, "mean_seconds": mean}),
            )
        })
        .collect();
    json!({
        "type": "summary", "seed": seed, "rounds_played": game.stats.iter().map(|s| s.tries).sum::<u32>(),
        "score": game.score, "best_streak": game.best_streak, "signs": signs,
    })
}

/// The summary as a table, printed after the screen.
fn summary_table(game: &Game) -> String {
    let width = game.signs.iter().map(|s| s.len()).max().unwrap_or(4).max(4);
    let mut text = format!(
        "score {} in {} rounds, best streak {}\n{:<width$}  tries  right  mean s to recognise\n",
        game.score,
        game.stats.iter().map(|s| s.tries).sum::<u32>(),
        game.best_streak,
        "sign"
    );
    for (sign, s) in game.signs.iter().zip(&game.stats) {
        let mean = s
            .mean_seconds()
            .map_or("-".to_string(), |m| format!("{m:.1}"));
        text.push_str(&format!(
            "{sign:<width$}  {:>5}  {:>5}  {mean:>6}\n",
            s.tries, s.right
        ));
    }
    text
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Headless: JSON Lines of each target and round, then the summary.
fn headless(live: Live, play: &mut Play, seed: u64) -> anyhow::Result<()> {
    let Live { pipeline, stop, .. } = live;
    let mut out = std::io::stdout().lock();
    if let Some(line) = target_line(&play.game) {
        writeln!(out, "{line}")?;
    }
    loop {
        let (newest, closed) = match pipeline.recv_newest(Duration::from_millis(20)) {
            Recv::Item(c) => (Some(c), false),
            Recv::Empty => (None, false),
            Recv::Closed => (None, pipeline.is_finished()),
        };
        for end in play.feed(&pipeline, newest) {
            writeln!(out, "{}", round_line(&end, &play.game))?;
            if let Some(line) = target_line(&play.game) {
                writeln!(out, "{line}")?;
            }
            out.flush()?;
        }
        if closed || stop.is_requested() || play.game.is_over() {
            break;
        }
    }
    let failure = pipeline.failure();
    let finished = pipeline.finish();
    let mut summary = summary_line(&play.game, seed);
    if let Some(failure) = failure {
        summary["error"] = json!(failure);
    }
    writeln!(out, "{summary}")?;
    out.flush()?;
    finished?;
    Ok(())
}

/// On a terminal: the game until q or a signal (or the rounds are played and q).
fn on_screen(live: Live, play: &mut Play, theme: Theme, refresh_hz: u32) -> anyhow::Result<()> {
    let Live { pipeline, stop, .. } = live;
    let shown = (|| -> anyhow::Result<()> {
        let mut term = terminal::TerminalGuard::enter()?;
        let budget = Duration::from_secs_f64(1.0 / f64::from(refresh_hz.max(1)));
        let mut flash_until: Option<Instant> = None;
        let mut quit = false;
        while !quit && !stop.is_requested() {
            let tick = Instant::now();
            for end in play.feed(&pipeline, pipeline.take_newest()) {
                if let RoundEnd::Correct { sign, seconds, .. } = end {
                    play.screen.flash = Some((sign, seconds));
                    flash_until = Some(tick + FLASH);
                }
            }
            if flash_until.is_some_and(|t| tick >= t) {
                play.screen.flash = None;
                flash_until = None;
            }
            play.screen.ended = pipeline.is_finished();
            play.screen.failure = pipeline.failure();
            term.terminal()
                .draw(|f| view::draw(f, &play.game, &play.screen, theme))?;
            let until = Instant::now() + budget.saturating_sub(tick.elapsed());
            while !quit && event::poll(until.saturating_duration_since(Instant::now()))? {
                if let Event::Key(key) = event::read()? {
                    quit = on_key(key, play);
                }
            }
        }
        Ok(())
    })();
    let finished = pipeline.finish();
    print!("{}", summary_table(&play.game));
    shown.context("drawing the practice screen")?;
    finished?;
    Ok(())
}

/// One key; true to quit. Kiosk mode: only quit.
fn on_key(key: crossterm::event::KeyEvent, play: &mut Play) -> bool {
    if key.kind == KeyEventKind::Release {
        return false;
    }
    let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
    if key.code == KeyCode::Char('q') || ctrl_c {
        return true;
    }
    if play.screen.kiosk {
        return false;
    }
    match key.code {
        KeyCode::Char('s') => {
            play.game.skip();
            play.screen.flash = None;
        }
        KeyCode::Char('r') => {
            play.game.reset();
            play.screen.flash = None;
        }
        KeyCode::Char('?') => play.screen.show_help = !play.screen.show_help,
        KeyCode::Esc => play.screen.show_help = false,
        _ => {}
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        ["Bird", "Cow", "No Action"].map(String::from).to_vec()
    }

    #[test]
    fn signs_default_to_the_labels_but_the_idle_class() {
        assert_eq!(choose_signs(&[], &labels()).unwrap(), ["Bird", "Cow"]);
        let asked = vec!["cow".to_string(), " Bird".to_string(), "Cow".to_string()];
        assert_eq!(choose_signs(&asked, &labels()).unwrap(), ["Cow", "Bird"]);
        let err = choose_signs(&["Horse".to_string()], &labels()).unwrap_err();
        assert!(
            format!("{err:#}").contains("\"Horse\" is not a sign"),
            "{err:#}"
        );
    }

    #[test]
    fn the_summary_has_every_sign() {
        let mut g = Game::new(vec!["Cow".into(), "Bird".into()], None, 1);
        let target = g.target_sign().unwrap().to_string();
        g.on_frame(Duration::from_secs(1));
        g.on_decision(&target, Duration::from_secs(3));
        g.skip();
        let line = summary_line(&g, 1);
        assert_eq!(line["score"], 1);
        assert_eq!(line["signs"][&target]["right"], 1);
        assert_eq!(line["signs"][&target]["mean_seconds"], 2.0);
        assert_eq!(line["rounds_played"], 2);
        let table = summary_table(&g);
        assert!(table.contains("score 1 in 2 rounds"), "{table}");
    }
}

//! The practice screen: the target sign large, a CORRECT flash when it is
//! recognised, score, streak and round, the class probabilities and the
//! recent decisions; kiosk mode shows only the target, the flash and the score.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use tui_big_text::{BigText, PixelSize};

use super::game::Game;
use crate::tui::Theme;
use crate::tui::bars::ProbabilityBars;
use crate::tui::view::{MIN_HEIGHT, MIN_WIDTH, draw_failure, draw_keys, draw_too_small, panel};

/// The keys of `signtop practice`, as `?` lists them.
pub const KEYS: &[(&str, &str)] = &[
    ("s", "skip this sign"),
    ("r", "reset score and transcript"),
    ("q, Ctrl-C", "quit (the summary is printed)"),
    ("?", "show / hide this help"),
];

/// What the screen shows besides the game.
#[derive(Clone, Debug, Default)]
pub struct Screen {
    /// Class labels of the model.
    pub labels: Vec<String>,
    /// The newest window's probabilities.
    pub probabilities: Vec<f32>,
    /// Decision threshold.
    pub threshold: f32,
    /// The sign just recognised and how long it took (the flash).
    pub flash: Option<(String, f64)>,
    /// Kiosk mode.
    pub kiosk: bool,
    /// Help shown.
    pub show_help: bool,
    /// The input ended.
    pub ended: bool,
    /// A stage failed.
    pub failure: Option<String>,
}

/// Draws the practice screen.
pub fn draw(frame: &mut Frame, game: &Game, screen: &Screen, theme: Theme) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        draw_too_small(frame, area);
        return;
    }
    let [header, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    draw_header(frame, header, game, screen, theme);
    if screen.kiosk || body.height < 14 {
        draw_target(frame, body, game, screen, theme);
    } else {
        let bars_height = (screen.labels.len() as u16 + 2).min(body.height / 2);
        let [target, bottom] =
            Layout::vertical([Constraint::Min(8), Constraint::Length(bars_height)]).areas(body);
        draw_target(frame, target, game, screen, theme);
        let [bars, transcript] =
            Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)])
                .areas(bottom);
        draw_bars(frame, bars, screen, theme);
        draw_transcript(frame, transcript, game, theme);
    }
    if screen.show_help {
        draw_keys(frame, area, KEYS, theme);
    } else if let Some(failure) = &screen.failure {
        draw_failure(frame, area, failure, theme);
    }
}

fn draw_header(frame: &mut Frame, area: Rect, game: &Game, screen: &Screen, theme: Theme) {
    let rounds = game.rounds.map_or(format!("round {}", game.round), |r| {
        format!("round {}/{r}", game.round.min(r))
    });
    let mut spans = vec![
        Span::styled(" signtop practice ", theme.title()),
        Span::raw(format!(
            "│ {rounds} │ score {} │ streak {} (best {}) ",
            game.score, game.streak, game.best_streak
        )),
    ];
    if screen.failure.is_some() {
        spans.push(Span::styled("│ STOPPED ", theme.warn()));
    } else if screen.ended {
        spans.push(Span::styled("│ END OF INPUT ", theme.warn()));
    }
    let keys = if screen.kiosk {
        "│ q quit"
    } else {
        "│ s skip  r reset  ? help"
    };
    spans.push(Span::styled(keys, theme.dim()));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The big word: CORRECT! while the flash lasts, else the target.
fn draw_target(frame: &mut Frame, area: Rect, game: &Game, screen: &Screen, theme: Theme) {
    let block = panel("sign this", theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let (word, style, under) = match (&screen.flash, game.target_sign()) {
        (Some((sign, seconds)), _) => (
            "CORRECT!".to_string(),
            theme.found(),
            format!("{sign} recognised in {seconds:.1} s"),
        ),
        (None, Some(target)) => (
            target.to_uppercase(),
            theme.decision(),
            match game.elapsed() {
                Some(s) => format!("target: {target}   {s:.1} s"),
                None => format!("target: {target}"),
            },
        ),
        (None, None) => (
            "DONE".to_string(),
            theme.title(),
            "every round played: q quits".to_string(),
        ),
    };
    let width = word.chars().count() as u16;
    // Full-size letters are 8 cells a letter and 8 rows; quadrants halve both.
    let pixel_size = if inner.width >= width * 8 && inner.height >= 10 {
        PixelSize::Full
    } else if inner.width >= width * 4 && inner.height >= 6 {
        PixelSize::Quadrant
    } else {
        PixelSize::Sextant
    };
    let rows = match pixel_size {
        PixelSize::Full => 8,
        PixelSize::Quadrant => 4,
        _ => 3,
    };
    let [_, big, _, text] = Layout::vertical([
        Constraint::Fill(1),
        Constraint::Length(rows),
        Constraint::Length(1),
        Constraint::Fill(1),
    ])
    .areas(inner);
    let big_text = BigText::builder()
        .pixel_size(pixel_size)
        .style(style)
        .lines(vec![Line::from(word)])
        .centered()
        .build();
    frame.render_widget(big_text, big);
    frame.render_widget(Paragraph::new(Line::styled(under, style).centered()), text);
}

fn draw_bars(frame: &mut Frame, area: Rect, screen: &Screen, theme: Theme) {
    let block = panel("signs", theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    frame.render_widget(
        ProbabilityBars {
            labels: &screen.labels,
            probabilities: &screen.probabilities,
            threshold: screen.threshold,
            held: None,
            rows_per_bar: 1,
            theme,
        },
        inner,
    );
}

fn draw_transcript(frame: &mut Frame, area: Rect, game: &Game, theme: Theme) {
    let text = if game.transcript.is_empty() {
        Line::styled("no signs yet", theme.dim())
    } else {
        Line::raw(game.transcript.join(" "))
    };
    frame.render_widget(
        Paragraph::new(text)
            .wrap(ratatui::widgets::Wrap { trim: true })
            .block(panel("you signed", theme)),
        area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use std::time::Duration;

    fn game() -> Game {
        let mut g = Game::new(
            vec!["Cow".into(), "Bird".into(), "Gorilla".into()],
            Some(10),
            3,
        );
        let target = g.target_sign().unwrap().to_string();
        g.on_frame(Duration::from_millis(1000));
        g.on_decision(&target, Duration::from_millis(3100));
        g.on_decision("Gorilla", Duration::from_millis(4000));
        g.on_frame(Duration::from_millis(4200));
        g.on_frame(Duration::from_millis(5900));
        g
    }

    fn screen() -> Screen {
        Screen {
            labels: ["Bird", "Cow", "Gorilla", "No Action"]
                .map(String::from)
                .to_vec(),
            probabilities: vec![0.1, 0.72, 0.08, 0.1],
            threshold: 0.7,
            ..Screen::default()
        }
    }

    fn render(game: &Game, screen: &Screen, width: u16, height: u16) -> TestBackend {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal
            .draw(|f| draw(f, game, screen, Theme::new(false)))
            .unwrap();
        terminal.backend().clone()
    }

    #[test]
    fn a_target_to_sign() {
        insta::assert_snapshot!(render(&game(), &screen(), 100, 30));
    }

    #[test]
    fn the_correct_flash() {
        let mut screen = screen();
        screen.flash = Some(("Cow".into(), 2.1));
        insta::assert_snapshot!(render(&game(), &screen, 100, 30));
    }

    #[test]
    fn kiosk_shows_the_target_only() {
        let mut screen = screen();
        screen.kiosk = true;
        insta::assert_snapshot!(render(&game(), &screen, 80, 20));
    }

    #[test]
    fn small_terminals() {
        insta::assert_snapshot!(render(&game(), &screen(), 44, 10));
        insta::assert_snapshot!(render(&game(), &screen(), 30, 6));
    }

    #[test]
    fn help_and_every_round_played() {
        let mut g = Game::new(vec!["Cow".into(), "Bird".into()], Some(1), 3);
        g.skip();
        let mut screen = screen();
        insta::assert_snapshot!(render(&g, &screen, 80, 24));
        screen.show_help = true;
        insta::assert_snapshot!(render(&g, &screen, 80, 24));
    }

    #[test]
    fn tiny_terminals_do_not_panic() {
        for (w, h) in [(1, 1), (40, 8), (41, 9)] {
            render(&game(), &screen(), w, h);
        }
    }
}

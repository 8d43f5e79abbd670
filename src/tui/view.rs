//! Drawing the dashboard from [`App`]: the layout (which sheds panels as the
//! terminal shrinks), the panels, and the help popup.

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Clear, Paragraph, Sparkline, Wrap};

use super::app::{App, Notice};
use super::bars::ProbabilityBars;
use super::preview::Preview;
use super::skeleton::Skeleton;
use super::theme::Theme;
use crate::pipeline::{Percentiles, StageSnapshot};

/// Smallest terminal the dashboard draws anything useful in.
pub const MIN_WIDTH: u16 = 40;
/// Smallest height.
pub const MIN_HEIGHT: u16 = 8;

/// Every key, as the help popup lists them.
pub const KEYS: &[(&str, &str)] = &[
    ("q, Ctrl-C", "quit"),
    ("space", "freeze / unfreeze the display"),
    ("+ / -", "raise / lower the decision threshold"),
    ("c", "clear the transcript"),
    ("m", "mirror left-right (selfie view)"),
    ("v", "camera preview / skeleton"),
    ("l", "load the sign model again"),
    ("w", "write the transcript to a file"),
    ("?", "show / hide this help"),
    ("Esc", "close this help"),
];

/// Draws the whole dashboard (the camera preview, when on, from `preview`).
pub fn draw(frame: &mut Frame, app: &App, theme: Theme, preview: &mut Preview) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        draw_too_small(frame, area);
        return;
    }
    if app.kiosk {
        draw_kiosk(frame, area, app, theme);
        if let Some(failure) = &app.failure {
            draw_failure(frame, area, failure, theme);
        }
        return;
    }
    let notice_rows = u16::from(app.notice.is_some());
    let [header, notice, body] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(notice_rows),
        Constraint::Min(0),
    ])
    .areas(area);
    draw_header(frame, header, app, theme);
    if let Some(n) = &app.notice {
        draw_notice(frame, notice, n, theme);
    }
    let bars_height = app.labels.len() as u16 + 2;
    if area.width >= 100 && area.height >= 28 {
        draw_full(frame, body, app, theme, bars_height, preview);
    } else if area.width >= 70 && area.height >= 18 {
        draw_medium(frame, body, app, theme, bars_height);
    } else {
        let [bars, rest] =
            Layout::vertical([Constraint::Length(bars_height), Constraint::Min(0)]).areas(body);
        draw_bars(frame, bars, app, theme, 1);
        if rest.height >= 3 {
            draw_transcript(frame, rest, app, theme);
        }
    }
    if app.show_help {
        draw_help(frame, area, theme);
    } else if let Some(failure) = &app.failure {
        draw_failure(frame, area, failure, theme);
    }
}

fn draw_full(
    frame: &mut Frame,
    body: Rect,
    app: &App,
    theme: Theme,
    bars_height: u16,
    preview: &mut Preview,
) {
    let top_height = bars_height.max(body.height * 9 / 20);
    let [top, bottom] =
        Layout::vertical([Constraint::Length(top_height), Constraint::Min(0)]).areas(body);
    let [bars, skeleton] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(top);
    draw_bars(frame, bars, app, theme, 1);
    if app.preview {
        draw_preview(frame, skeleton, preview, theme);
    } else {
        draw_skeleton(frame, skeleton, app, theme);
    }
    let [transcript, perf, status] = Layout::horizontal([
        Constraint::Percentage(30),
        Constraint::Percentage(48),
        Constraint::Percentage(22),
    ])
    .areas(bottom);
    draw_transcript(frame, transcript, app, theme);
    draw_performance(frame, perf, app, theme);
    draw_status(frame, status, app, theme);
}

fn draw_medium(frame: &mut Frame, body: Rect, app: &App, theme: Theme, bars_height: u16) {
    let [bars, bottom] =
        Layout::vertical([Constraint::Length(bars_height), Constraint::Min(0)]).areas(body);
    draw_bars(frame, bars, app, theme, 1);
    let [transcript, perf] =
        Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(bottom);
    draw_transcript(frame, transcript, app, theme);
    draw_performance(frame, perf, app, theme);
}

pub(crate) fn panel(title: &str, theme: Theme) -> Block<'_> {
    Block::bordered().title(Span::styled(format!(" {title} "), theme.title()))
}

pub(crate) fn draw_too_small(frame: &mut Frame, area: Rect) {
    let text = format!(
        "terminal too small: {}x{} (need {MIN_WIDTH}x{MIN_HEIGHT})",
        area.width, area.height
    );
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
}

fn draw_header(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let s = &app.source;
    let mut spans = vec![
        Span::styled(" signtop ", theme.title()),
        Span::raw(format!(
            "│ {} {} {}x{} ",
            s.description, s.format, s.width, s.height
        )),
        Span::raw(format!("│ threshold {:.2} ", app.threshold)),
        Span::raw(format!(
            "│ mirror {} ",
            if app.mirror { "on" } else { "off" }
        )),
    ];
    if app.frozen {
        spans.push(Span::styled("│ FROZEN ", theme.warn()));
    }
    if app.failure.is_some() {
        spans.push(Span::styled("│ STOPPED ", theme.warn()));
    } else if app.ended {
        spans.push(Span::styled("│ END OF INPUT ", theme.warn()));
    }
    spans.push(Span::styled("│ ? help", theme.dim()));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_bars(frame: &mut Frame, area: Rect, app: &App, theme: Theme, rows_per_bar: u16) {
    let title = if app.probabilities.is_empty() {
        "signs (window filling)".to_string()
    } else {
        format!("signs (threshold {:.2})", app.threshold)
    };
    let block = panel(&title, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    frame.render_widget(
        ProbabilityBars {
            labels: &app.labels,
            probabilities: &app.probabilities,
            threshold: app.threshold,
            held: app.held,
            rows_per_bar,
            theme,
        },
        inner,
    );
}

/// One line under the header: news in the title style, an error in the warning one.
pub(crate) fn draw_notice(frame: &mut Frame, area: Rect, notice: &Notice, theme: Theme) {
    let style = if notice.error {
        theme.warn()
    } else {
        theme.title()
    };
    frame.render_widget(
        Paragraph::new(Line::styled(format!(" {}", notice.text), style)),
        area,
    );
}

/// The camera frame with its landmarks, in place of the skeleton.
pub(crate) fn draw_preview(frame: &mut Frame, area: Rect, preview: &mut Preview, theme: Theme) {
    let title = format!("preview ({})", preview.protocol_name());
    preview.draw(frame, area, panel(&title, theme), theme);
}

pub(crate) fn draw_skeleton(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let aspect = if app.source.height == 0 {
        4.0 / 3.0
    } else {
        f64::from(app.source.width) / f64::from(app.source.height)
    };
    frame.render_widget(
        Skeleton {
            keypoints: &app.keypoints,
            aspect,
            theme,
            block: panel("skeleton", theme),
        },
        area,
    );
}

fn draw_transcript(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let lines: Vec<Line> = if app.transcript.is_empty() {
        vec![Line::styled("no signs yet", theme.dim())]
    } else {
        app.transcript
            .iter()
            .map(|t| {
                Line::from(vec![
                    Span::styled(format!("{} ", clock(t.at)), theme.dim()),
                    Span::styled(t.label.clone(), theme.title()),
                    Span::raw(format!(" {:.2}", t.probability)),
                ])
            })
            .collect()
    };
    frame.render_widget(
        Paragraph::new(lines).block(panel("transcript", theme)),
        area,
    );
}

/// mm:ss.s since the start.
fn clock(at: Duration) -> String {
    let secs = at.as_secs_f64();
    let minutes = (secs / 60.0).floor();
    format!("{:02}:{:04.1}", minutes as u64, secs - minutes * 60.0)
}

fn stage_row(name: &str, s: &StageSnapshot) -> String {
    format!(
        "{name:<10}{:>6.1}{:>8.1}{:>8.1}{:>8.1}",
        s.fps, s.service.p50, s.service.p95, s.service.p99
    )
}

fn e2e_row(p: &Percentiles) -> String {
    format!(
        "{:<10}{:>6}{:>8.1}{:>8.1}{:>8.1}",
        "end2end", "", p.p50, p.p95, p.p99
    )
}

fn draw_performance(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let m = &app.metrics;
    let block = panel("performance", theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut lines = vec![
        Line::styled(
            format!(
                "{:<10}{:>6}{:>8}{:>8}{:>8}",
                "stage", "fps", "p50 ms", "p95", "p99"
            ),
            theme.title(),
        ),
        Line::raw(stage_row("capture", &m.capture)),
        Line::raw(stage_row("landmarks", &m.landmarks)),
        Line::raw(stage_row("classify", &m.classify)),
        Line::raw(stage_row("ui", &m.ui)),
        Line::raw(e2e_row(&m.end_to_end)),
    ];
    // Landmark sub-stages under their stage, when there is room for them and the sparkline.
    let base_rows = lines.len() + 2 + 3;
    if usize::from(inner.height) >= base_rows + m.landmark_stages.len() {
        let subs = m.landmark_stages.iter().map(|(name, p)| {
            Line::styled(
                format!("  {name:<14.14}{:>8.1}{:>8.1}{:>8.1}", p.p50, p.p95, p.p99),
                theme.dim(),
            )
        });
        lines.splice(3..3, subs);
    }
    let drops_style = if m.dropped > 0 {
        theme.warn()
    } else {
        Style::new()
    };
    let in_flight = if m.in_flight > 0 {
        format!(" ({} in flight)", m.in_flight)
    } else {
        String::new()
    };
    lines.push(Line::styled(
        format!(
            "frames {} done {} dropped {}{in_flight}",
            m.frames_in, m.processed, m.dropped
        ),
        drops_style,
    ));
    lines.push(Line::styled(
        format!(
            "drops: lm {} cls {} cam {} corrupt {}",
            m.drops.landmarks, m.drops.classify, m.drops.source, m.drops.corrupt
        ),
        drops_style,
    ));
    let text_height = (lines.len() as u16).min(inner.height);
    let [text, label, spark] = Layout::vertical([
        Constraint::Length(text_height),
        Constraint::Length(1),
        Constraint::Max(4),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(Text::from(lines)), text);
    if spark.height >= 1 {
        let width = usize::from(spark.width);
        let data = &m.recent_end_to_end;
        let tail = &data[data.len().saturating_sub(width)..];
        let max = tail.iter().copied().max().unwrap_or(0);
        frame.render_widget(
            Paragraph::new(Line::styled(
                format!("end-to-end ms, last {} (max {max})", tail.len()),
                theme.dim(),
            )),
            label,
        );
        frame.render_widget(Sparkline::default().data(tail).style(theme.bar()), spark);
    }
}

fn draw_status(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let parts = app.keypoints.parts();
    let row = |name: &str, found: bool| {
        let (mark, style) = if found {
            ("[x]", theme.found())
        } else {
            ("[ ]", theme.dim())
        };
        Line::from(vec![
            Span::styled(format!("{mark} "), style),
            Span::raw(name.to_string()),
        ])
    };
    let lines = vec![
        row("pose", parts.pose),
        row("left hand", parts.left_hand),
        row("right hand", parts.right_hand),
        row("face", parts.face),
    ];
    frame.render_widget(Paragraph::new(lines).block(panel("detection", theme)), area);
}

fn draw_kiosk(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let [bars, footer] = Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(area);
    let inner_height = bars.height.saturating_sub(2);
    let n = app.labels.len().max(1) as u16;
    let rows = (inner_height / n).clamp(1, 5);
    draw_bars(frame, bars, app, theme, rows);
    let last = app
        .transcript
        .front()
        .map_or(String::new(), |t| format!(" last: {}", t.label));
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(last, theme.decision()),
            Span::styled("   q quit", theme.dim()),
        ])),
        footer,
    );
}

/// Why the pipeline stopped, over the panels as they were when it did.
pub(crate) fn draw_failure(frame: &mut Frame, area: Rect, failure: &str, theme: Theme) {
    let width = 64.min(area.width);
    let text = vec![
        Line::from(Span::styled(failure.to_string(), theme.warn())),
        Line::raw(""),
        Line::from(Span::styled(
            "q quits; the error is printed again on exit",
            theme.dim(),
        )),
    ];
    // Wrapped text: a rough line count from the message length.
    let inner_width = usize::from(width.saturating_sub(2).max(1));
    let lines = failure.len().div_ceil(inner_width) as u16 + 3;
    let height = (lines + 2).min(area.height);
    // Over the bars, just under the header: the transcript stays in view.
    let popup = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + 2.min(area.height - height),
        width,
        height,
    );
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: true })
            .block(panel("stopped", theme)),
        popup,
    );
}

fn draw_help(frame: &mut Frame, area: Rect, theme: Theme) {
    draw_keys(frame, area, KEYS, theme);
}

/// A popup listing `keys` and what each does.
pub(crate) fn draw_keys(frame: &mut Frame, area: Rect, keys: &[(&str, &str)], theme: Theme) {
    let width = 52.min(area.width);
    let height = (keys.len() as u16 + 2).min(area.height);
    let popup = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    );
    let lines: Vec<Line> = keys
        .iter()
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(format!("{key:<11}"), theme.title()),
                Span::raw(*what),
            ])
        })
        .collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(panel("keys", theme)), popup);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landmarks::{Keypoints, Landmark};
    use crate::pipeline::{Drops, MetricsSnapshot};
    use crate::tui::app::{AppOptions, SourceLine, TranscriptLine};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn stage(fps: f64, p50: f64) -> StageSnapshot {
        StageSnapshot {
            processed: 300,
            fps,
            service: Percentiles {
                count: 300,
                p50,
                p95: p50 * 1.5,
                p99: p50 * 2.0,
            },
            since_capture: Percentiles::default(),
        }
    }

    fn app(kiosk: bool) -> App {
        let labels = ["hello", "thanks", "iloveyou", "yes", "no", "please"];
        let options = AppOptions {
            threshold: 0.7,
            mirror: false,
            kiosk,
            transcript_length: 20,
            preview: false,
        };
        let source = SourceLine {
            description: "cow_correct.gif".into(),
            format: "gif".into(),
            width: 640,
            height: 480,
        };
        let mut app = App::new(
            labels.iter().map(|s| s.to_string()).collect(),
            source,
            &options,
        );
        app.probabilities = vec![0.82, 0.10, 0.03, 0.02, 0.02, 0.01];
        app.held = Some(0);
        for (i, (label, p)) in [("thanks", 0.91), ("hello", 0.88)].iter().enumerate() {
            app.transcript.push_back(TranscriptLine {
                label: label.to_string(),
                probability: *p,
                at: Duration::from_millis(75_300 - i as u64 * 12_000),
            });
        }
        app.metrics = MetricsSnapshot {
            elapsed_s: 80.0,
            frames_in: 2400,
            processed: 2350,
            in_flight: 0,
            dropped: 50,
            drops: Drops {
                landmarks: 40,
                classify: 10,
                output: 7,
                source: 0,
                corrupt: 0,
            },
            pipelined: 0,
            capture: stage(30.0, 1.2),
            landmarks: stage(29.4, 21.0),
            classify: stage(29.4, 0.6),
            ui: stage(20.0, 1.0),
            end_to_end: Percentiles {
                count: 2350,
                p50: 24.0,
                p95: 31.0,
                p99: 40.0,
            },
            recent_end_to_end: (0..60).map(|i| 20 + (i * 7) % 15).collect(),
            landmark_stages: vec![
                (
                    "pose detect".into(),
                    Percentiles {
                        count: 300,
                        p50: 6.0,
                        p95: 7.0,
                        p99: 9.0,
                    },
                ),
                (
                    "hands".into(),
                    Percentiles {
                        count: 300,
                        p50: 8.5,
                        p95: 9.9,
                        p99: 12.0,
                    },
                ),
            ],
        };
        // A pose standing in the middle of the frame, right hand raised.
        let pose = crate::tui::skeleton::test_pose();
        let hand = (0..21)
            .map(|i| Landmark::xyz(0.3 + 0.005 * i as f32, 0.3 - 0.006 * i as f32, 0.0))
            .collect();
        app.keypoints = Keypoints {
            pose: Some(pose),
            right_hand: Some(hand),
            ..Keypoints::default()
        };
        app
    }

    fn render(app: &App, width: u16, height: u16) -> TestBackend {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        let mut preview = Preview::halfblocks();
        terminal
            .draw(|f| draw(f, app, Theme::new(false), &mut preview))
            .unwrap();
        terminal.backend().clone()
    }

    #[test]
    fn full_dashboard() {
        insta::assert_snapshot!(render(&app(false), 110, 32));
    }

    #[test]
    fn medium_terminal_sheds_the_skeleton_and_status() {
        insta::assert_snapshot!(render(&app(false), 80, 20));
    }

    #[test]
    fn small_terminal_keeps_bars_and_transcript() {
        insta::assert_snapshot!(render(&app(false), 50, 14));
    }

    #[test]
    fn too_small_terminal_says_so() {
        insta::assert_snapshot!(render(&app(false), 30, 6));
    }

    #[test]
    fn help_popup_lists_every_key() {
        let mut a = app(false);
        a.show_help = true;
        a.frozen = true;
        let backend = render(&a, 110, 32);
        insta::assert_snapshot!(backend);
    }

    #[test]
    fn a_failed_stage_is_shown_over_the_panels() {
        let mut a = app(false);
        a.ended = true;
        a.failure =
            Some("capture: camera /dev/video0 is gone: No such device (os error 19)".to_string());
        insta::assert_snapshot!(render(&a, 110, 32));
    }

    #[test]
    fn kiosk_shows_large_bars() {
        insta::assert_snapshot!(render(&app(true), 80, 24));
    }

    #[test]
    fn window_filling_and_empty_transcript() {
        let mut a = app(false);
        a.probabilities.clear();
        a.held = None;
        a.transcript.clear();
        insta::assert_snapshot!(render(&a, 80, 20));
    }

    #[test]
    fn a_refused_model_is_shown_under_the_header() {
        let mut a = app(false);
        a.notify(
            "models/signs.onnx not loaded: it reads the 1662 layout but the pipeline makes 258; the old model keeps running".into(),
            true,
        );
        insta::assert_snapshot!(render(&a, 110, 32));
    }

    #[test]
    fn the_preview_replaces_the_skeleton() {
        let mut a = app(false);
        a.preview = true;
        let mut preview = Preview::halfblocks();
        preview.set_frame(crate::tui::preview::test_frame(&a.keypoints));
        let mut terminal = Terminal::new(TestBackend::new(110, 32)).unwrap();
        terminal
            .draw(|f| draw(f, &a, Theme::new(false), &mut preview))
            .unwrap();
        insta::assert_snapshot!(terminal.backend());
    }

    #[test]
    fn zero_and_one_cell_terminals_do_not_panic() {
        render(&app(false), 1, 1);
        render(&app(true), 1, 1);
    }
}

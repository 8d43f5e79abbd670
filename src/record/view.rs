//! The recording screen: the sign being recorded (large), the countdown or
//! the take's progress, takes per sign, the skeleton and the camera preview;
//! smaller terminals keep the sign, the phase and the takes.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, Paragraph};
use tui_big_text::{BigText, PixelSize};

use super::session::{Phase, Session};
use crate::landmarks::Keypoints;
use crate::tui::Theme;
use crate::tui::app::Notice;
use crate::tui::preview::Preview;
use crate::tui::skeleton::Skeleton;
use crate::tui::view::{
    MIN_HEIGHT, MIN_WIDTH, draw_failure, draw_keys, draw_notice, draw_preview, draw_too_small,
    panel,
};

/// The keys of `signtop record`, as `?` lists them.
pub const KEYS: &[(&str, &str)] = &[
    ("space", "start / pause (a take in progress is dropped)"),
    ("n", "next sign"),
    ("d", "delete the last take"),
    ("v", "camera preview on / off"),
    ("q, Ctrl-C", "quit (a take in progress is dropped)"),
    ("?", "show / hide this help"),
];

/// What the screen shows besides the session.
#[derive(Clone, Debug, Default)]
pub struct Screen {
    /// The recording folder.
    pub out: String,
    /// The source, as the header names it.
    pub source: String,
    /// Frame width / height.
    pub aspect: f64,
    /// Keypoints of the newest frame.
    pub keypoints: Keypoints,
    /// The last thing saved, discarded or deleted.
    pub notice: Option<Notice>,
    /// Help shown.
    pub show_help: bool,
    /// Camera preview shown.
    pub preview: bool,
    /// The input ended.
    pub ended: bool,
    /// A stage failed.
    pub failure: Option<String>,
}

/// Draws the recording screen.
pub fn draw(
    frame: &mut Frame,
    session: &Session,
    screen: &Screen,
    theme: Theme,
    preview: &mut Preview,
) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        draw_too_small(frame, area);
        return;
    }
    let [header, notice, body] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
    ])
    .areas(area);
    draw_header(frame, header, screen, theme);
    if let Some(n) = &screen.notice {
        draw_notice(frame, notice, n, theme);
    }
    let takes_width = (longest_sign(session) + 18)
        .clamp(20, 40)
        .min(body.width / 2);
    let big = body.width >= 70 && body.height >= 22;
    let top_height = if big { 10 } else { body.height.min(7) };
    let [top, bottom] =
        Layout::vertical([Constraint::Length(top_height), Constraint::Min(0)]).areas(body);
    let [sign, takes] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(takes_width)]).areas(top);
    draw_sign(frame, sign, session, theme, big);
    draw_takes(frame, takes, session, theme);
    if bottom.height >= 6 {
        draw_camera(frame, bottom, screen, theme, preview);
    }
    if screen.show_help {
        draw_keys(frame, area, KEYS, theme);
    } else if let Some(failure) = &screen.failure {
        draw_failure(frame, area, failure, theme);
    }
}

fn longest_sign(session: &Session) -> u16 {
    session
        .signs
        .iter()
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(0)
        .min(40) as u16
}

fn draw_header(frame: &mut Frame, area: Rect, screen: &Screen, theme: Theme) {
    let mut spans = vec![
        Span::styled(" signtop record ", theme.title()),
        Span::raw(format!("│ {} │ {} ", screen.out, screen.source)),
    ];
    if screen.failure.is_some() {
        spans.push(Span::styled("│ STOPPED ", theme.warn()));
    } else if screen.ended {
        spans.push(Span::styled("│ END OF INPUT ", theme.warn()));
    }
    spans.push(Span::styled("│ ? help", theme.dim()));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// What the session is doing, in words.
fn phase_line(session: &Session) -> String {
    let take = session.saved.get(session.current).copied().unwrap_or(0) + 1;
    let of = session.timing.takes;
    match &session.phase {
        Phase::Paused => format!("PAUSED: space records take {take}/{of}"),
        Phase::Countdown { .. } => match session.countdown_left() {
            Some(left) => format!("take {take}/{of} in {:.0}", left.ceil()),
            None => format!("take {take}/{of}: get ready"),
        },
        Phase::Recording { .. } => format!(
            "RECORDING take {take}/{of}: {:.1} / {:.1} s",
            session.recorded().unwrap_or(0.0),
            session.timing.seconds
        ),
        Phase::Done => "all takes recorded: q quits, d deletes the last".to_string(),
    }
}

fn draw_sign(frame: &mut Frame, area: Rect, session: &Session, theme: Theme, big: bool) {
    let title = format!("sign {} of {}", session.current + 1, session.signs.len());
    let block = panel(&title, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let big_rows = if big { 4 } else { 0 };
    let [name, phase, gauge] = Layout::vertical([
        Constraint::Length(big_rows.max(1)),
        Constraint::Length(if big { 2 } else { 3 }),
        Constraint::Length(1),
    ])
    .areas(inner);
    if big {
        let text = BigText::builder()
            .pixel_size(PixelSize::Quadrant)
            .style(theme.decision())
            .lines(vec![Line::from(session.sign().to_uppercase())])
            .centered()
            .build();
        frame.render_widget(text, name);
    } else {
        frame.render_widget(
            Paragraph::new(Line::styled(session.sign().to_string(), theme.decision()).centered()),
            name,
        );
    }
    let style = match session.phase {
        Phase::Recording { .. } => theme.warn(),
        _ => theme.title(),
    };
    // The sign's name as text too: big letters are hard to read (and to test).
    let lines = vec![
        Line::styled(phase_line(session), style).centered(),
        Line::styled(format!("sign: {}", session.sign()), theme.dim()).centered(),
    ];
    frame.render_widget(
        Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: true }),
        phase,
    );
    let ratio = match (&session.phase, session.recorded()) {
        (Phase::Recording { .. }, Some(done)) => (done / session.timing.seconds).clamp(0.0, 1.0),
        _ => 0.0,
    };
    frame.render_widget(
        Gauge::default()
            .ratio(ratio)
            .gauge_style(theme.bar())
            .label(format!("{:.0}%", ratio * 100.0)),
        gauge,
    );
}

fn draw_takes(frame: &mut Frame, area: Rect, session: &Session, theme: Theme) {
    let lines: Vec<Line> = session
        .signs
        .iter()
        .enumerate()
        .map(|(i, sign)| {
            let saved = session.saved[i];
            let before = session.before.get(i).copied().unwrap_or(0);
            let mark = if i == session.current { "▶ " } else { "  " };
            let style = if i == session.current {
                theme.title()
            } else {
                ratatui::style::Style::new()
            };
            let earlier = if before > 0 {
                format!(" (+{before})")
            } else {
                String::new()
            };
            Line::from(vec![
                Span::styled(format!("{mark}{sign}"), style),
                Span::raw(format!(" {saved}/{}{earlier}", session.timing.takes)),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).block(panel("takes", theme)), area);
}

fn draw_camera(
    frame: &mut Frame,
    area: Rect,
    screen: &Screen,
    theme: Theme,
    preview: &mut Preview,
) {
    let skeleton_area = if screen.preview && area.width >= 60 {
        let [skeleton, camera] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(area);
        draw_preview(frame, camera, preview, theme);
        skeleton
    } else if screen.preview {
        draw_preview(frame, area, preview, theme);
        return;
    } else {
        area
    };
    frame.render_widget(
        Skeleton {
            keypoints: &screen.keypoints,
            aspect: screen.aspect,
            theme,
            block: panel("skeleton", theme),
        },
        skeleton_area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::LandmarkedFrame;
    use crate::record::session::Timing;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use std::time::Duration;

    fn session() -> Session {
        let timing = Timing {
            takes: 5,
            seconds: 2.0,
            countdown: 3.0,
            max_gap: crate::record::session::DEFAULT_MAX_GAP,
        };
        let mut s = Session::new(
            vec!["Cow".into(), "Bird".into(), "Thank you".into()],
            vec![0, 4, 0],
            timing,
        );
        s.saved = vec![2, 0, 0];
        s
    }

    fn screen() -> Screen {
        let pose = crate::tui::skeleton::test_pose();
        Screen {
            out: "takes/".into(),
            source: "/dev/video0 YUYV 640x480".into(),
            aspect: 4.0 / 3.0,
            keypoints: Keypoints {
                pose: Some(pose),
                ..Keypoints::default()
            },
            notice: Some(Notice {
                text: "saved Cow/take-002.npy (60 frames, 2.0 s, 30.0 fps)".into(),
                error: false,
            }),
            ..Screen::default()
        }
    }

    fn recording(s: &mut Session, frames: u64) {
        s.toggle();
        s.timing.countdown = 0.0;
        for i in 0..frames {
            s.on_frame(LandmarkedFrame {
                sequence: i,
                captured: Duration::from_millis(33 * i),
                keypoints: Keypoints::default(),
            });
        }
    }

    fn render_with(
        s: &Session,
        screen: &Screen,
        preview: &mut Preview,
        width: u16,
        height: u16,
    ) -> TestBackend {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal
            .draw(|f| draw(f, s, screen, Theme::new(false), preview))
            .unwrap();
        terminal.backend().clone()
    }

    fn render(s: &Session, screen: &Screen, width: u16, height: u16) -> TestBackend {
        render_with(s, screen, &mut Preview::halfblocks(), width, height)
    }

    #[test]
    fn recording_a_take() {
        let mut s = session();
        recording(&mut s, 37);
        insta::assert_snapshot!(render(&s, &screen(), 100, 30));
    }

    #[test]
    fn paused_with_the_preview_on() {
        let mut screen = screen();
        screen.preview = true;
        let mut preview = Preview::halfblocks();
        preview.set_frame(crate::tui::preview::test_frame(&screen.keypoints));
        insta::assert_snapshot!(render_with(&session(), &screen, &mut preview, 100, 30));
    }

    #[test]
    fn small_terminal_keeps_the_sign_and_takes() {
        let mut s = session();
        recording(&mut s, 10);
        insta::assert_snapshot!(render(&s, &screen(), 50, 12));
    }

    #[test]
    fn help_popup_lists_the_keys() {
        let mut screen = screen();
        screen.show_help = true;
        insta::assert_snapshot!(render(&session(), &screen, 80, 24));
    }

    #[test]
    fn too_small_says_so() {
        insta::assert_snapshot!(render(&session(), &screen(), 30, 6));
    }

    #[test]
    fn a_camera_gone_is_shown() {
        let mut screen = screen();
        screen.failure = Some("capture: camera /dev/video0 is gone".into());
        screen.notice = Some(Notice {
            text: "discarded the take in progress (Cow, 37 frames): the source failed".into(),
            error: true,
        });
        insta::assert_snapshot!(render(&session(), &screen, 100, 30));
    }

    #[test]
    fn tiny_terminals_do_not_panic() {
        for (w, h) in [(1, 1), (40, 8), (41, 9)] {
            render(&session(), &screen(), w, h);
        }
    }
}

//! The probability bars widget: one bar per class with the threshold marked
//! on it and the held sign highlighted; a large variant for kiosk mode.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;

use super::theme::Theme;

/// Characters of the bar.
const FULL: &str = "█";
const EMPTY: &str = "░";
const MARK: &str = "│";

/// Probability bars for every class.
pub struct ProbabilityBars<'a> {
    /// Class labels.
    pub labels: &'a [String],
    /// Probabilities (may be empty: the window is still filling).
    pub probabilities: &'a [f32],
    /// Threshold to mark.
    pub threshold: f32,
    /// Class to highlight.
    pub held: Option<usize>,
    /// Rows per bar (1 normally, more in kiosk mode).
    pub rows_per_bar: u16,
    /// Styles.
    pub theme: Theme,
}

impl Widget for ProbabilityBars<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width == 0 || area.height == 0 {
            return;
        }
        let label_width = self
            .labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0);
        let label_width = (label_width as u16 + 2).min(area.width / 3);
        let value_width = 6u16; // " 0.87" plus a gap
        let bar_width = area.width.saturating_sub(label_width + value_width);
        let rows = self.rows_per_bar.max(1);
        for (i, label) in self.labels.iter().enumerate() {
            let top = area.y + i as u16 * rows;
            if top + rows > area.y + area.height {
                break;
            }
            let p = self.probabilities.get(i).copied();
            let held = self.held == Some(i);
            let label_style = if held {
                self.theme.decision()
            } else {
                self.theme.title()
            };
            let marker = if held { "▶" } else { " " };
            let text = format!("{marker}{label}");
            buf.set_stringn(
                area.x,
                top + rows / 2,
                &text,
                label_width as usize,
                label_style,
            );
            for row in 0..rows {
                self.draw_bar(buf, area.x + label_width, top + row, bar_width, p, held);
            }
            let value = p.map_or_else(|| "  -- ".to_string(), |p| format!(" {p:.2}"));
            let vx = area.x + label_width + bar_width;
            buf.set_stringn(
                vx,
                top + rows / 2,
                &value,
                value_width as usize,
                label_style,
            );
        }
    }
}

impl ProbabilityBars<'_> {
    fn draw_bar(&self, buf: &mut Buffer, x: u16, y: u16, width: u16, p: Option<f32>, held: bool) {
        if width == 0 {
            return;
        }
        let filled = p.map_or(0, |p| (p.clamp(0.0, 1.0) * width as f32).round() as u16);
        let mark = ((self.threshold.clamp(0.0, 1.0) * width as f32).round() as u16).min(width - 1);
        let bar_style = if held {
            self.theme.decision()
        } else {
            self.theme.bar()
        };
        for col in 0..width {
            let (symbol, style) = if col == mark {
                (MARK, self.theme.threshold())
            } else if col < filled {
                (FULL, bar_style)
            } else {
                (EMPTY, self.theme.dim())
            };
            if let Some(cell) = buf.cell_mut((x + col, y)) {
                cell.set_symbol(symbol).set_style(style);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        vec!["hello".into(), "thanks".into()]
    }

    fn render(area: Rect, probabilities: &[f32], held: Option<usize>) -> Buffer {
        let labels = labels();
        let mut buf = Buffer::empty(area);
        ProbabilityBars {
            labels: &labels,
            probabilities,
            threshold: 0.5,
            held,
            rows_per_bar: 1,
            theme: Theme::new(false),
        }
        .render(area, &mut buf);
        buf
    }

    #[test]
    fn bars_fill_to_the_probability_with_the_threshold_marked() {
        let buf = render(Rect::new(0, 0, 28, 2), &[1.0, 0.25], Some(0));
        let expected = Buffer::with_lines([
            "▶hello  ███████│██████ 1.00 ",
            " thanks ████░░░│░░░░░░ 0.25 ",
        ]);
        assert_eq!(
            buf.content().iter().map(|c| c.symbol()).collect::<String>(),
            expected
                .content()
                .iter()
                .map(|c| c.symbol())
                .collect::<String>()
        );
    }

    #[test]
    fn empty_probabilities_show_dashes() {
        let buf = render(Rect::new(0, 0, 28, 2), &[], None);
        let line: String = (0..28).map(|x| buf[(x, 1)].symbol().to_string()).collect();
        assert!(line.ends_with("--  "), "{line:?}");
    }

    #[test]
    fn tiny_and_empty_areas_do_not_panic() {
        render(Rect::new(0, 0, 0, 0), &[0.5, 0.5], None);
        render(Rect::new(0, 0, 1, 1), &[0.5, 0.5], None);
        render(Rect::new(0, 0, 3, 1), &[0.5, 0.5], Some(1));
    }
}

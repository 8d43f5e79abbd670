//! The camera preview: the newest frame with its landmarks drawn, shown with
//! the best image protocol the terminal has (kitty, sixel, iTerm2, found by
//! ratatui-image's query) or Unicode half blocks (two pixels a cell) anywhere
//! else, SSH and tmux included.
//!
//! Cheap by construction: the frame is shrunk to the pixels the panel can
//! show before anything is drawn on it, and only a frame that is new (or a
//! panel that changed size) is encoded again; the frames come through a
//! one-slot newest-wins hand-off, so a slow terminal skips frames, never
//! holds the models up.

use image::{DynamicImage, RgbImage, imageops};
use ratatui::Frame;
use ratatui::layout::{Rect, Size};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph};
use ratatui_image::Image;
use ratatui_image::picker::{Picker, ProtocolType};
use ratatui_image::protocol::Protocol;
use ratatui_image::protocol::halfblocks::Halfblocks;

use super::theme::Theme;
use crate::keypoint_files::draw::draw_keypoints;
use crate::pipeline::PreviewFrame;

/// The preview's state: how to draw, the newest frame, its encoding.
pub struct Preview {
    picker: Picker,
    frame: Option<PreviewFrame>,
    /// The encoded frame and the panel size it was made for.
    encoded: Option<(Protocol, Rect)>,
}

impl Preview {
    /// Asks the terminal which image protocol and font size it has (call
    /// before the dashboard takes the terminal); half blocks when it does
    /// not answer, and without asking inside tmux or screen and over SSH:
    /// there the answer may never come, and the query's reader would keep
    /// the keys typed after it.
    pub fn detect() -> Preview {
        if behind_a_multiplexer_or_ssh() {
            tracing::info!("tmux, screen or SSH: the preview uses half blocks");
            return Preview::halfblocks();
        }
        let picker = Picker::from_query_stdio().unwrap_or_else(|err| {
            tracing::info!(%err, "terminal image query failed; the preview uses half blocks");
            Picker::halfblocks()
        });
        tracing::info!(protocol = ?picker.protocol_type(), font = ?picker.font_size(), "preview");
        Preview::with_picker(picker)
    }

    /// Unicode half blocks, whatever the terminal.
    pub fn halfblocks() -> Preview {
        Preview::with_picker(Picker::halfblocks())
    }

    fn with_picker(picker: Picker) -> Preview {
        Preview {
            picker,
            frame: None,
            encoded: None,
        }
    }

    /// The protocol's name, for the panel title.
    pub fn protocol_name(&self) -> &'static str {
        match self.picker.protocol_type() {
            ProtocolType::Halfblocks => "half blocks",
            ProtocolType::Sixel => "sixel",
            ProtocolType::Kitty => "kitty",
            ProtocolType::Iterm2 => "iTerm2",
        }
    }

    /// Shows `frame` from the next draw on.
    pub fn set_frame(&mut self, frame: PreviewFrame) {
        self.frame = Some(frame);
        self.encoded = None;
    }

    /// Whether a frame has arrived.
    pub fn has_frame(&self) -> bool {
        self.frame.is_some()
    }

    /// Draws the newest frame inside `block` over `area`.
    pub fn draw(&mut self, frame: &mut Frame, area: Rect, block: Block<'_>, theme: Theme) {
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if inner.width == 0 || inner.height == 0 {
            return;
        }
        let Some(shown) = &self.frame else {
            let text = Line::styled("waiting for a frame", theme.dim());
            frame.render_widget(Paragraph::new(text), inner);
            return;
        };
        if self.encoded.as_ref().is_none_or(|(_, at)| *at != inner) {
            match self.encode(shown, inner) {
                Ok(encoded) => self.encoded = Some((encoded, inner)),
                Err(err) => {
                    tracing::warn!(%err, "preview frame not encoded");
                    self.encoded = None;
                }
            }
        }
        if let Some((protocol, _)) = &self.encoded {
            let size = protocol.size();
            let x = inner.x + (inner.width.saturating_sub(size.width)) / 2;
            let y = inner.y + (inner.height.saturating_sub(size.height)) / 2;
            let at = Rect::new(x, y, size.width, size.height).intersection(inner);
            frame.render_widget(Image::new(protocol), at);
        }
    }

    /// Shrinks the frame to the panel, mirrors it with its keypoints, draws
    /// the landmarks on it and encodes it.
    fn encode(&self, shown: &PreviewFrame, panel: Rect) -> Result<Protocol, String> {
        let (cell_w, cell_h) = self.pixels_per_cell();
        let (w, h) = shown.image.dimensions();
        let cells = fit_cells(w, h, panel, cell_w, cell_h);
        if cells.width == 0 || cells.height == 0 {
            return Err("panel too small".to_string());
        }
        let pixels = (
            u32::from(cells.width) * cell_w,
            u32::from(cells.height) * cell_h,
        );
        let mut small = shrink(&shown.image, pixels);
        if shown.mirrored {
            imageops::flip_horizontal_in_place(&mut small);
        }
        draw_keypoints(&mut small, &shown.keypoints);
        let image = DynamicImage::ImageRgb8(small);
        match self.picker.protocol_type() {
            ProtocolType::Halfblocks => Halfblocks::new(image, cells)
                .map(Protocol::Halfblocks)
                .map_err(|e| e.to_string()),
            _ => self
                .picker
                .new_protocol(image, cells, ratatui_image::Resize::Fit(None))
                .map_err(|e| e.to_string()),
        }
    }

    /// Image pixels one cell shows: 1 x 2 in half blocks, the font's size
    /// with an image protocol.
    fn pixels_per_cell(&self) -> (u32, u32) {
        match self.picker.protocol_type() {
            ProtocolType::Halfblocks => (1, 2),
            _ => {
                let font = self.picker.font_size();
                (u32::from(font.width.max(1)), u32::from(font.height.max(1)))
            }
        }
    }
}

/// A 640x480 frame, dark with a lighter body-sized block in the middle, and
/// `keypoints`: what the screens' snapshot tests show in the preview.
#[cfg(test)]
pub(crate) fn test_frame(keypoints: &crate::landmarks::Keypoints) -> PreviewFrame {
    let mut image = RgbImage::from_pixel(640, 480, image::Rgb([30, 30, 30]));
    for (x, y, p) in image.enumerate_pixels_mut() {
        if (200..440).contains(&x) && (100..400).contains(&y) {
            *p = image::Rgb([200, 180, 150]);
        }
    }
    PreviewFrame {
        image,
        keypoints: keypoints.clone(),
        mirrored: false,
        captured: std::time::Duration::ZERO,
    }
}

/// Inside tmux or screen, or logged in over SSH.
fn behind_a_multiplexer_or_ssh() -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    let term = std::env::var("TERM").unwrap_or_default();
    set("TMUX")
        || set("STY")
        || set("SSH_CONNECTION")
        || set("SSH_TTY")
        || term.starts_with("screen")
        || term.starts_with("tmux")
}

/// The largest cell size inside `panel` that keeps a `w` x `h` image's shape.
fn fit_cells(w: u32, h: u32, panel: Rect, cell_w: u32, cell_h: u32) -> Size {
    if w == 0 || h == 0 {
        return Size::new(0, 0);
    }
    let max_w = f64::from(panel.width) * f64::from(cell_w);
    let max_h = f64::from(panel.height) * f64::from(cell_h);
    let scale = (max_w / f64::from(w)).min(max_h / f64::from(h));
    let cols = (f64::from(w) * scale / f64::from(cell_w)).floor() as u16;
    let rows = (f64::from(h) * scale / f64::from(cell_h)).floor() as u16;
    Size::new(cols.min(panel.width), rows.min(panel.height))
}

/// `image` scaled to exactly `size` (a box filter when shrinking: fast).
fn shrink(image: &RgbImage, (w, h): (u32, u32)) -> RgbImage {
    if image.dimensions() == (w, h) {
        return image.clone();
    }
    if w <= image.width() && h <= image.height() {
        imageops::thumbnail(image, w, h)
    } else {
        imageops::resize(image, w, h, imageops::FilterType::Triangle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landmarks::{Keypoints, Landmark};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn frame_with_a_hand(mirrored: bool) -> PreviewFrame {
        let hand = (0..21)
            .map(|i| Landmark::xyz(0.2 + 0.01 * i as f32, 0.3 + 0.01 * i as f32, 0.0))
            .collect();
        PreviewFrame {
            image: RgbImage::from_pixel(640, 480, image::Rgb([40, 40, 40])),
            keypoints: Keypoints {
                left_hand: Some(hand),
                ..Keypoints::default()
            },
            mirrored,
            captured: std::time::Duration::ZERO,
        }
    }

    fn render(preview: &mut Preview, width: u16, height: u16) -> TestBackend {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal
            .draw(|f| {
                let area = f.area();
                preview.draw(f, area, Block::bordered(), Theme::new(false));
            })
            .unwrap();
        terminal.backend().clone()
    }

    fn half_blocks(backend: &TestBackend) -> usize {
        backend
            .buffer()
            .content()
            .iter()
            .filter(|c| matches!(c.symbol(), "▀" | "▄"))
            .count()
    }

    #[test]
    fn the_frame_fills_the_panel_in_its_shape() {
        // 4:3 in a 42x12 panel (40x10 inside): 10 rows of 2 pixels make 20
        // pixels high, so 26 columns wide.
        assert_eq!(
            fit_cells(640, 480, Rect::new(0, 0, 40, 10), 1, 2),
            Size::new(26, 10)
        );
        assert_eq!(
            fit_cells(640, 480, Rect::new(0, 0, 0, 10), 1, 2),
            Size::new(0, 0)
        );
    }

    #[test]
    fn a_frame_is_drawn_in_half_blocks_with_its_landmarks() {
        let mut preview = Preview::halfblocks();
        let empty = render(&mut preview, 42, 12);
        assert_eq!(half_blocks(&empty), 0);
        assert!(empty.to_string().contains("waiting for a frame"));
        preview.set_frame(frame_with_a_hand(false));
        let drawn = render(&mut preview, 42, 12);
        // A plain grey frame is all spaces; the hand's red lines make half blocks.
        assert!(half_blocks(&drawn) > 0, "{drawn}");
        // The hand is in the image's left half (x 0.2-0.4); mirrored, in the right half.
        let columns = |b: &TestBackend| -> Vec<u16> {
            (0..42)
                .filter(|&x| (0..12).any(|y| matches!(b.buffer()[(x, y)].symbol(), "▀" | "▄")))
                .collect()
        };
        assert!(columns(&drawn).iter().all(|&x| x < 21), "{drawn}");
    }

    #[test]
    fn a_mirrored_frame_is_flipped_to_match_its_keypoints() {
        // White on the image's left; mirrored keypoints come with a flipped image.
        let mut frame = frame_with_a_hand(true);
        frame.keypoints = frame.keypoints.mirrored();
        for (x, _, p) in frame.image.enumerate_pixels_mut() {
            if x < 100 {
                *p = image::Rgb([255, 255, 255]);
            }
        }
        let mut preview = Preview::halfblocks();
        preview.set_frame(frame);
        let b = render(&mut preview, 42, 12);
        let white = |x: u16| {
            (1..11).any(|y| {
                let cell = &b.buffer()[(x, y)];
                [cell.fg, cell.bg].contains(&ratatui::style::Color::Rgb(255, 255, 255))
            })
        };
        let white_columns: Vec<u16> = (0..42).filter(|&x| white(x)).collect();
        assert!(!white_columns.is_empty(), "{b}");
        assert!(white_columns.iter().all(|&x| x >= 21), "{white_columns:?}");
        // The hand, mirrored to the right too.
        let hand_columns: Vec<u16> = (0..42)
            .filter(|&x| (0..12).any(|y| matches!(b.buffer()[(x, y)].symbol(), "▀" | "▄")))
            .collect();
        assert!(
            !hand_columns.is_empty() && hand_columns.iter().all(|&x| x >= 21),
            "{b}"
        );
    }

    #[test]
    fn tiny_panels_do_not_panic() {
        let mut preview = Preview::halfblocks();
        preview.set_frame(frame_with_a_hand(false));
        for (w, h) in [(1, 1), (2, 2), (3, 3), (0, 0)] {
            if w > 0 {
                render(&mut preview, w, h);
            }
        }
    }
}

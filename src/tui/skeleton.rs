//! The skeleton preview: the current landmarks drawn on a ratatui canvas
//! (pose and hand bones as lines, the face mesh as points).

use ratatui::layout::Rect;
use ratatui::style::Color;
use ratatui::symbols::Marker;
use ratatui::widgets::canvas::{Canvas, Context, Line, Points};
use ratatui::widgets::{Block, Widget};

use crate::landmarks::{Keypoints, Landmark};

use super::theme::Theme;
use crate::landmarks::topology::{HAND_CONNECTIONS, POSE_CONNECTIONS};

/// The skeleton of one frame, in a block.
pub struct Skeleton<'a> {
    /// Landmarks to draw.
    pub keypoints: &'a Keypoints,
    /// Frame width / height, to keep proportions.
    pub aspect: f64,
    /// Styles.
    pub theme: Theme,
    /// Frame around it.
    pub block: Block<'a>,
}

impl Widget for Skeleton<'_> {
    fn render(self, area: Rect, buf: &mut ratatui::buffer::Buffer) {
        let [pose, left, right, face] = self.theme.skeleton();
        let kp = self.keypoints;
        // Terminal cells are about twice as tall as wide: widen x bounds to keep the frame's shape.
        let inner = self.block.inner(area);
        let cell_aspect = if inner.height == 0 {
            1.0
        } else {
            f64::from(inner.width) / (2.0 * f64::from(inner.height))
        };
        let stretch = (cell_aspect / self.aspect.max(0.1)).max(1.0);
        let pad = (stretch - 1.0) / 2.0;
        Canvas::default()
            .block(self.block)
            .marker(Marker::Braille)
            .x_bounds([-pad, 1.0 + pad])
            .y_bounds([0.0, 1.0])
            .paint(|ctx| {
                if let Some(points) = &kp.face {
                    let coords: Vec<(f64, f64)> = points.iter().map(flip).collect();
                    ctx.draw(&Points {
                        coords: &coords,
                        color: face,
                    });
                }
                draw_bones(ctx, kp.pose.as_deref(), &POSE_CONNECTIONS, pose);
                draw_bones(ctx, kp.left_hand.as_deref(), &HAND_CONNECTIONS, left);
                draw_bones(ctx, kp.right_hand.as_deref(), &HAND_CONNECTIONS, right);
            })
            .render(area, buf);
    }
}

/// Image coordinates (y down) to canvas coordinates (y up).
fn flip(p: &Landmark) -> (f64, f64) {
    (f64::from(p.x), 1.0 - f64::from(p.y))
}

fn draw_bones(
    ctx: &mut Context<'_>,
    points: Option<&[Landmark]>,
    bones: &[(usize, usize)],
    color: Color,
) {
    let Some(points) = points else {
        return;
    };
    for &(a, b) in bones {
        if let (Some(pa), Some(pb)) = (points.get(a), points.get(b)) {
            let (x1, y1) = flip(pa);
            let (x2, y2) = flip(pb);
            ctx.draw(&Line {
                x1,
                y1,
                x2,
                y2,
                color,
            });
        }
    }
}

/// A pose standing in the middle of the frame: what the screens' snapshot
/// tests draw.
#[cfg(test)]
pub(crate) fn test_pose() -> Vec<Landmark> {
    (0..33)
        .map(|i| Landmark {
            x: 0.4 + 0.2 * ((i % 2) as f32),
            y: 0.1 + 0.025 * i as f32,
            z: 0.0,
            visibility: 1.0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::buffer::Buffer;

    fn render(keypoints: &Keypoints, area: Rect) -> Buffer {
        let mut buf = Buffer::empty(area);
        Skeleton {
            keypoints,
            aspect: 4.0 / 3.0,
            theme: Theme::new(false),
            block: Block::bordered(),
        }
        .render(area, &mut buf);
        buf
    }

    fn inked(buf: &Buffer) -> usize {
        buf.content()
            .iter()
            .filter(|c| {
                c.symbol()
                    .chars()
                    .any(|ch| ('\u{2801}'..='\u{28ff}').contains(&ch))
            })
            .count()
    }

    #[test]
    fn nothing_found_draws_nothing() {
        assert_eq!(
            inked(&render(&Keypoints::default(), Rect::new(0, 0, 30, 12))),
            0
        );
    }

    #[test]
    fn a_hand_is_drawn_where_it_is() {
        // A hand in the left half of the image, upper half.
        let hand = (0..21)
            .map(|i| Landmark::xyz(0.1 + 0.01 * i as f32, 0.2 + 0.01 * i as f32, 0.0))
            .collect();
        let kp = Keypoints {
            left_hand: Some(hand),
            ..Keypoints::default()
        };
        let buf = render(&kp, Rect::new(0, 0, 30, 12));
        assert!(inked(&buf) > 0);
        let right_half_ink = (15..30)
            .flat_map(|x| (0..12).map(move |y| (x, y)))
            .filter(|&(x, y)| {
                buf[(x, y)].symbol() != " "
                    && buf[(x, y)].symbol() != "│"
                    && buf[(x, y)].symbol() != "─"
                    && buf[(x, y)].symbol() != "┐"
                    && buf[(x, y)].symbol() != "┘"
            })
            .count();
        assert_eq!(right_half_ink, 0, "drawn on the wrong side");
    }

    #[test]
    fn tiny_areas_do_not_panic() {
        let pose = vec![Landmark::default(); 33];
        let kp = Keypoints {
            pose: Some(pose),
            ..Keypoints::default()
        };
        render(&kp, Rect::new(0, 0, 0, 0));
        render(&kp, Rect::new(0, 0, 1, 1));
        render(&kp, Rect::new(0, 0, 2, 2));
    }
}

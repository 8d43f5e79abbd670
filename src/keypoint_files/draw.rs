//! Drawing keypoints on a frame to look at: the pose and both hands as
//! skeletons (landmarks and their connections), the face mesh as points.

use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_circle_mut, draw_line_segment_mut};

use crate::landmarks::keypoints::{Keypoints, Landmark};
use crate::landmarks::topology::{HAND_CONNECTIONS, POSE_CONNECTIONS};

/// Pose skeleton colour.
pub const POSE_COLOUR: Rgb<u8> = Rgb([255, 255, 255]);
/// The person's left hand.
pub const LEFT_HAND_COLOUR: Rgb<u8> = Rgb([255, 64, 64]);
/// The person's right hand.
pub const RIGHT_HAND_COLOUR: Rgb<u8> = Rgb([64, 128, 255]);
/// Face mesh points.
pub const FACE_COLOUR: Rgb<u8> = Rgb([64, 255, 160]);

/// Pose landmarks less visible than this are left out, as MediaPipe's own
/// drawing does: their positions are guesses.
const MIN_POSE_VISIBILITY: f32 = 0.5;

/// Draws every part present in `keypoints` onto `image`.
pub fn draw_keypoints(image: &mut RgbImage, keypoints: &Keypoints) {
    let scale = Scale::of(image);
    if let Some(face) = &keypoints.face {
        for p in face.iter().filter_map(|p| scale.pixel(p)) {
            draw_filled_circle_mut(image, round(p), 1, FACE_COLOUR);
        }
    }
    if let Some(pose) = &keypoints.pose {
        let visible =
            |p: &Landmark| (p.visibility >= MIN_POSE_VISIBILITY).then(|| scale.pixel(p))?;
        draw_skeleton(image, pose, &POSE_CONNECTIONS, visible, POSE_COLOUR, &scale);
    }
    for (hand, colour) in [
        (&keypoints.left_hand, LEFT_HAND_COLOUR),
        (&keypoints.right_hand, RIGHT_HAND_COLOUR),
    ] {
        if let Some(hand) = hand {
            draw_skeleton(
                image,
                hand,
                &HAND_CONNECTIONS,
                |p| scale.pixel(p),
                colour,
                &scale,
            );
        }
    }
}

/// Normalised coordinates to pixels, and how thick to draw at this size.
struct Scale {
    width: f32,
    height: f32,
    /// Line thickness and point radius in pixels: one per 320 pixels of the
    /// longer side, 1 to 4.
    thickness: i32,
}

impl Scale {
    fn of(image: &RgbImage) -> Scale {
        let side = image.width().max(image.height());
        Scale {
            width: image.width() as f32,
            height: image.height() as f32,
            thickness: (side / 320).clamp(1, 4) as i32,
        }
    }

    /// The pixel position of a landmark, `None` if it is not a number.
    fn pixel(&self, p: &Landmark) -> Option<(f32, f32)> {
        let (x, y) = (p.x * self.width, p.y * self.height);
        (x.is_finite() && y.is_finite()).then_some((x, y))
    }
}

fn round((x, y): (f32, f32)) -> (i32, i32) {
    (x.round() as i32, y.round() as i32)
}

/// Lines between connected points, then a dot on each point; `position`
/// decides which points are drawn (and where).
fn draw_skeleton(
    image: &mut RgbImage,
    points: &[Landmark],
    connections: &[(usize, usize)],
    position: impl Fn(&Landmark) -> Option<(f32, f32)>,
    colour: Rgb<u8>,
    scale: &Scale,
) {
    let at = |i: usize| points.get(i).and_then(&position);
    for &(a, b) in connections {
        if let (Some(start), Some(end)) = (at(a), at(b)) {
            // Thicker lines: the same segment shifted by whole pixels.
            for dx in 0..scale.thickness {
                for dy in 0..scale.thickness {
                    let shift = |(x, y): (f32, f32)| (x + dx as f32, y + dy as f32);
                    draw_line_segment_mut(image, shift(start), shift(end), colour);
                }
            }
        }
    }
    for p in points.iter().filter_map(&position) {
        draw_filled_circle_mut(image, round(p), scale.thickness, colour);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landmarks::keypoints::{HAND_LANDMARKS, POSE_LANDMARKS};

    fn grey() -> RgbImage {
        RgbImage::from_pixel(64, 48, Rgb([128, 128, 128]))
    }

    fn count(image: &RgbImage, colour: Rgb<u8>) -> usize {
        image.pixels().filter(|p| **p == colour).count()
    }

    fn hand(x0: f32) -> Vec<Landmark> {
        (0..HAND_LANDMARKS)
            .map(|i| Landmark::xyz(x0 + 0.01 * i as f32, 0.2 + 0.03 * i as f32, 0.0))
            .collect()
    }

    #[test]
    fn no_parts_draw_nothing() {
        let mut image = grey();
        draw_keypoints(&mut image, &Keypoints::default());
        assert_eq!(image, grey());
    }

    #[test]
    fn each_hand_has_its_own_colour() {
        let mut image = grey();
        let keypoints = Keypoints {
            left_hand: Some(hand(0.1)),
            right_hand: Some(hand(0.6)),
            ..Keypoints::default()
        };
        draw_keypoints(&mut image, &keypoints);
        assert!(count(&image, LEFT_HAND_COLOUR) > 20);
        assert!(count(&image, RIGHT_HAND_COLOUR) > 20);
        assert_eq!(count(&image, POSE_COLOUR), 0);
        // The left hand lies in the left half of the picture.
        let left_x: Vec<u32> = image
            .enumerate_pixels()
            .filter(|(_, _, p)| **p == LEFT_HAND_COLOUR)
            .map(|(x, _, _)| x)
            .collect();
        assert!(left_x.iter().all(|&x| x < 32), "{left_x:?}");
    }

    #[test]
    fn invisible_pose_points_and_off_image_points_are_skipped_safely() {
        let mut image = grey();
        let mut pose = vec![
            Landmark {
                x: 0.5,
                y: 0.5,
                z: 0.0,
                visibility: 0.1
            };
            POSE_LANDMARKS
        ];
        // Far outside the frame, and not a number: clipped or left out, no panic.
        pose[11] = Landmark {
            x: -3.0,
            y: 7.0,
            z: 0.0,
            visibility: 0.9,
        };
        pose[12] = Landmark {
            x: f32::NAN,
            y: 0.5,
            z: 0.0,
            visibility: 0.9,
        };
        let keypoints = Keypoints {
            pose: Some(pose.clone()),
            ..Keypoints::default()
        };
        draw_keypoints(&mut image, &keypoints);
        assert_eq!(count(&image, POSE_COLOUR), 0);
        // Once the centre points are visible, the pose shows.
        for p in pose.iter_mut().take(11) {
            p.visibility = 0.9;
        }
        let keypoints = Keypoints {
            pose: Some(pose),
            ..Keypoints::default()
        };
        draw_keypoints(&mut image, &keypoints);
        assert!(count(&image, POSE_COLOUR) > 0);
    }

    #[test]
    fn face_points_are_drawn_when_present() {
        let mut image = grey();
        let keypoints = Keypoints {
            face: Some(vec![Landmark::xyz(0.5, 0.5, 0.0); 468]),
            ..Keypoints::default()
        };
        draw_keypoints(&mut image, &keypoints);
        assert!(count(&image, FACE_COLOUR) > 0);
    }
}

//! Regions of interest: rotated rectangles from two alignment keypoints and
//! MediaPipe's rect transformation (scale, shift, square long side), as in
//! `pose_detection_to_roi.pbtxt` and `rect_transformation_calculator`.

use std::f32::consts::PI;

use super::keypoints::Landmark;

/// A rotated rectangle in normalised image coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Roi {
    /// Centre x in [0, 1] of image width.
    pub x: f32,
    /// Centre y in [0, 1] of image height.
    pub y: f32,
    /// Width as a fraction of image width.
    pub w: f32,
    /// Height as a fraction of image height.
    pub h: f32,
    /// Rotation in radians (clockwise in image coordinates).
    pub rotation: f32,
}

/// Wraps an angle into [-pi, pi).
pub fn normalize_radians(angle: f32) -> f32 {
    angle - 2.0 * PI * ((angle + PI) / (2.0 * PI)).floor()
}

/// Rotation that brings the vector start->end (normalised coordinates of an
/// image `width` x `height`) to `target` radians.
pub fn rotation_from(start: [f32; 2], end: [f32; 2], target: f32, width: f32, height: f32) -> f32 {
    let dx = (end[0] - start[0]) * width;
    let dy = (end[1] - start[1]) * height;
    normalize_radians(target - (-dy).atan2(dx))
}

/// Square ROI centred on `centre` whose side is twice the pixel distance to
/// `scale_point`, rotated so centre->scale_point points at 90 degrees
/// (MediaPipe's alignment-points rect for pose detections).
pub fn alignment_rect(centre: [f32; 2], scale_point: [f32; 2], width: f32, height: f32) -> Roi {
    alignment_rect_towards(centre, scale_point, PI / 2.0, width, height)
}

/// Like [`alignment_rect`], with the rotation bringing centre->scale_point to
/// `target` radians (MediaPipe's `rotation_vector_target_angle_degrees`).
pub fn alignment_rect_towards(
    centre: [f32; 2],
    scale_point: [f32; 2],
    target: f32,
    width: f32,
    height: f32,
) -> Roi {
    let dx = (scale_point[0] - centre[0]) * width;
    let dy = (scale_point[1] - centre[1]) * height;
    let side = 2.0 * (dx * dx + dy * dy).sqrt();
    Roi {
        x: centre[0],
        y: centre[1],
        w: side / width,
        h: side / height,
        rotation: rotation_from(centre, scale_point, target, width, height),
    }
}

impl Roi {
    /// Scales the rect, shifts it along its own rotated axes (fractions of its
    /// size) and optionally squares it on its long side, in pixel terms.
    pub fn transformed(
        &self,
        scale: [f32; 2],
        shift: [f32; 2],
        square_long: bool,
        width: f32,
        height: f32,
    ) -> Roi {
        let (sin, cos) = self.rotation.sin_cos();
        let sx = shift[0] * self.w * width;
        let sy = shift[1] * self.h * height;
        let x = self.x + (sx * cos - sy * sin) / width;
        let y = self.y + (sx * sin + sy * cos) / height;
        let (mut w, mut h) = (self.w, self.h);
        if square_long {
            let long = (w * width).max(h * height);
            w = long / width;
            h = long / height;
        }
        Roi {
            x,
            y,
            w: w * scale[0],
            h: h * scale[1],
            rotation: self.rotation,
        }
    }

    /// Maps a point given in the ROI crop's normalised coordinates back to
    /// normalised image coordinates (MediaPipe's landmark projection).
    pub fn project(&self, p: [f32; 2], width: f32, height: f32) -> [f32; 2] {
        let (sin, cos) = self.rotation.sin_cos();
        let px = (p[0] - 0.5) * self.w * width;
        let py = (p[1] - 0.5) * self.h * height;
        [
            self.x + (px * cos - py * sin) / width,
            self.y + (px * sin + py * cos) / height,
        ]
    }
}

/// When a part found in the previous frame keeps its previous ROI instead of
/// this frame's re-crop ROI (MediaPipe's `RoiTrackingCalculator` options).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackingRequirements {
    /// Largest rotation difference, degrees.
    pub rotation_degrees: f32,
    /// Largest centre shift, as a fraction of the re-crop rect's size.
    pub translation: f32,
    /// Largest size difference, as a fraction of the re-crop rect's size.
    pub scale: f32,
    /// Margin added to the re-crop rect (negative shrinks it) that every
    /// previous landmark must fall inside.
    pub recrop_margin: f32,
}

impl TrackingRequirements {
    /// Hand and face tracking's choice: the rect `tracked` makes
    /// of the previous frame's landmarks while the re-crop agrees with it
    /// ([`TrackingRequirements::keep_previous`]), else `recrop` (also when
    /// nothing was tracked).
    pub fn tracked_or_recrop(
        &self,
        previous: Option<&[Landmark]>,
        tracked: impl FnOnce(&[Landmark]) -> Roi,
        recrop: Roi,
        width: f32,
        height: f32,
    ) -> Roi {
        let Some(previous) = previous else {
            return recrop;
        };
        let tracked = tracked(previous);
        let points: Vec<[f32; 2]> = previous.iter().map(|l| [l.x, l.y]).collect();
        if self.keep_previous(&tracked, &points, &recrop, width, height) {
            tracked
        } else {
            recrop
        }
    }

    /// True when the previous frame's ROI may be kept: it is close enough to
    /// the re-crop ROI and the previous landmarks all lie inside the latter.
    pub fn keep_previous(
        &self,
        previous: &Roi,
        previous_landmarks: &[[f32; 2]],
        recrop: &Roi,
        width: f32,
        height: f32,
    ) -> bool {
        self.rects_close(previous, recrop, width, height)
            && self.landmarks_inside(previous_landmarks, recrop, width, height)
    }

    /// Both centres are compared in the re-crop rect's rotated frame.
    fn rects_close(&self, previous: &Roi, recrop: &Roi, width: f32, height: f32) -> bool {
        let turn = |r: &Roi| rotate_point([r.x * width, r.y * height], -recrop.rotation);
        let (p, q) = (turn(previous), turn(recrop));
        let (rw, rh) = (recrop.w * width, recrop.h * height);
        let mut rotation = (previous.rotation - recrop.rotation).to_degrees();
        if rotation > 180.0 {
            rotation -= 360.0;
        }
        if rotation < -180.0 {
            rotation += 360.0;
        }
        rotation.abs() <= self.rotation_degrees
            && (p[0] - q[0]).abs() <= rw * self.translation
            && (p[1] - q[1]).abs() <= rh * self.translation
            && (previous.w * width - rw).abs() <= rw * self.scale
            && (previous.h * height - rh).abs() <= rh * self.scale
    }

    fn landmarks_inside(&self, points: &[[f32; 2]], recrop: &Roi, width: f32, height: f32) -> bool {
        let centre = rotate_point([recrop.x * width, recrop.y * height], -recrop.rotation);
        let half_w = recrop.w * width * (1.0 + self.recrop_margin) / 2.0;
        let half_h = recrop.h * height * (1.0 + self.recrop_margin) / 2.0;
        points.iter().all(|p| {
            let q = rotate_point([p[0] * width, p[1] * height], -recrop.rotation);
            (q[0] - centre[0]).abs() < half_w && (q[1] - centre[1]).abs() < half_h
        })
    }
}

/// Rotates a pixel point about the origin by `angle` radians.
fn rotate_point(p: [f32; 2], angle: f32) -> [f32; 2] {
    let (sin, cos) = angle.sin_cos();
    [p[0] * cos - p[1] * sin, p[0] * sin + p[1] * cos]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn normalize_wraps() {
        assert!(close(normalize_radians(3.0 * PI / 2.0), -PI / 2.0));
        assert!(close(normalize_radians(0.25), 0.25));
    }

    #[test]
    fn upright_body_has_no_rotation() {
        // Scale point straight above the hip centre: no rotation, side = 2 * dist.
        let r = alignment_rect([0.5, 0.5], [0.5, 0.25], 640.0, 480.0);
        assert!(close(r.rotation, 0.0));
        assert!(close(r.h, 0.5) && close(r.w, 240.0 / 640.0));
        let lying = alignment_rect([0.5, 0.5], [0.75, 0.5], 480.0, 480.0);
        assert!(close(lying.rotation, PI / 2.0));
    }

    #[test]
    fn square_long_and_scale() {
        let r = Roi {
            x: 0.5,
            y: 0.5,
            w: 0.5,
            h: 0.5,
            rotation: 0.0,
        };
        let t = r.transformed([1.25, 1.25], [0.0, 0.0], true, 640.0, 480.0);
        assert!(close(t.w, 1.25 * 0.5) && close(t.h, 1.25 * 320.0 / 480.0));
    }

    #[test]
    fn shift_follows_rotation_and_projection_round_trips() {
        let r = Roi {
            x: 0.5,
            y: 0.5,
            w: 0.2,
            h: 0.2,
            rotation: PI / 2.0,
        };
        let t = r.transformed([1.0, 1.0], [0.0, -0.1], false, 100.0, 100.0);
        assert!(close(t.x, 0.52) && close(t.y, 0.5));
        assert_eq!(r.project([0.5, 0.5], 100.0, 100.0), [0.5, 0.5]);
        let p = r.project([1.0, 0.5], 100.0, 100.0);
        assert!(close(p[0], 0.5) && close(p[1], 0.6));
    }

    #[test]
    fn tracking_keeps_a_close_rect_and_drops_a_moved_one() {
        let req = TrackingRequirements {
            rotation_degrees: 40.0,
            translation: 0.2,
            scale: 0.4,
            recrop_margin: -0.1,
        };
        let recrop = Roi {
            x: 0.5,
            y: 0.5,
            w: 0.2,
            h: 0.2,
            rotation: 0.3,
        };
        let inside = [[0.5, 0.5], [0.54, 0.46]];
        let near = Roi {
            x: 0.52,
            rotation: 0.5,
            ..recrop
        };
        assert!(req.keep_previous(&near, &inside, &recrop, 100.0, 100.0));
        let far = Roi { x: 0.6, ..recrop };
        assert!(!req.keep_previous(&far, &inside, &recrop, 100.0, 100.0));
        let turned = Roi {
            rotation: 0.3 + 41f32.to_radians(),
            ..recrop
        };
        assert!(!req.keep_previous(&turned, &inside, &recrop, 100.0, 100.0));
        let bigger = Roi { w: 0.29, ..recrop };
        assert!(!req.keep_previous(&bigger, &inside, &recrop, 100.0, 100.0));
        // A landmark in the outer 5% of the re-crop rect loses tracking.
        assert!(!req.keep_previous(&recrop, &[[0.595, 0.5]], &recrop, 100.0, 100.0));
    }
}

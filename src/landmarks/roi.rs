//! Regions of interest: rotated rectangles from two alignment keypoints and
//! MediaPipe's rect transformation (scale, shift, square long side), as in
//! `pose_detection_to_roi.pbtxt` and `rect_transformation_calculator`.

use std::f32::consts::PI;

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
    let dx = (scale_point[0] - centre[0]) * width;
    let dy = (scale_point[1] - centre[1]) * height;
    let side = 2.0 * (dx * dx + dy * dy).sqrt();
    Roi {
        x: centre[0],
        y: centre[1],
        w: side / width,
        h: side / height,
        rotation: rotation_from(centre, scale_point, PI / 2.0, width, height),
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
}

//! Landmark smoothing as Holistic's pose_landmark_filtering graph does it: a
//! one-euro filter per coordinate (pixel units, velocity scaled by the object
//! size) and a low-pass filter on visibility.

use super::keypoints::Landmark;

/// Frame interval the Python solution stamps frames with (33333 us).
const FRAME_SECONDS: f32 = 0.033_333;

/// One-euro filter settings (cutoffs in Hz).
#[derive(Debug, Clone, Copy)]
pub struct OneEuro {
    /// Cutoff at rest.
    pub min_cutoff: f32,
    /// Cutoff growth with speed.
    pub beta: f32,
    /// Cutoff of the velocity filter.
    pub derivate_cutoff: f32,
}

/// Pose landmarks 0..33 (`pose_landmark_filtering.pbtxt`: min_cutoff 0.05,
/// beta 80, derivate_cutoff 1).
pub const POSE_FILTER: OneEuro = OneEuro {
    min_cutoff: 0.05,
    beta: 80.0,
    derivate_cutoff: 1.0,
};
/// Pose auxiliary (ROI) landmarks, smoothed harder for a steady crop
/// (min_cutoff 0.01, beta 10, derivate_cutoff 1).
pub const AUX_FILTER: OneEuro = OneEuro {
    min_cutoff: 0.01,
    beta: 10.0,
    derivate_cutoff: 1.0,
};
/// Visibility low-pass weight of the new value.
const VISIBILITY_ALPHA: f32 = 0.1;

fn alpha(cutoff: f32) -> f32 {
    let tau = 1.0 / (2.0 * std::f32::consts::PI * cutoff);
    1.0 / (1.0 + tau / FRAME_SECONDS)
}

/// State of one filtered value: last raw value, filtered value and velocity.
#[derive(Debug, Clone, Copy)]
struct Channel {
    raw: f32,
    value: f32,
    velocity: f32,
}

impl Channel {
    fn start(v: f32) -> Channel {
        Channel {
            raw: v,
            value: v,
            velocity: 0.0,
        }
    }

    fn apply(&mut self, v: f32, scale: f32, f: &OneEuro) -> f32 {
        let dv = (v - self.raw) * scale / FRAME_SECONDS;
        let a_d = alpha(f.derivate_cutoff);
        // The velocity filter was seeded with 0 on the first frame.
        self.velocity = a_d * dv + (1.0 - a_d) * self.velocity;
        let a = alpha(f.min_cutoff + f.beta * self.velocity.abs());
        self.value = a * v + (1.0 - a) * self.value;
        self.raw = v;
        self.value
    }
}

/// Smooths one landmark list over frames; reset when the part is lost.
#[derive(Debug, Clone)]
pub struct LandmarkSmoother {
    filter: OneEuro,
    state: Option<(Vec<[Channel; 3]>, Vec<f32>)>,
}

impl LandmarkSmoother {
    /// A smoother with the given one-euro settings.
    pub fn new(filter: OneEuro) -> LandmarkSmoother {
        LandmarkSmoother {
            filter,
            state: None,
        }
    }

    /// Forgets the history (the part was not found).
    pub fn reset(&mut self) {
        self.state = None;
    }

    /// Smooths `lms` (normalised to a `w` x `h` image) in place; velocities
    /// are divided by `scale`, the object's size in pixels (see
    /// [`bounding_scale`]; the pose passes its ROI's).
    pub fn apply(&mut self, lms: &mut [Landmark], w: f32, h: f32, scale: f32) {
        let fresh = || {
            (
                lms.iter()
                    .map(|l| {
                        [
                            Channel::start(l.x * w),
                            Channel::start(l.y * h),
                            Channel::start(l.z * w),
                        ]
                    })
                    .collect::<Vec<_>>(),
                lms.iter().map(|l| l.visibility).collect::<Vec<_>>(),
            )
        };
        let Some((channels, vis)) = self.state.as_mut().filter(|s| s.0.len() == lms.len()) else {
            self.state = Some(fresh());
            return;
        };
        if scale <= 1e-6 {
            return;
        }
        for ((lm, ch), v) in lms.iter_mut().zip(channels.iter_mut()).zip(vis.iter_mut()) {
            lm.x = ch[0].apply(lm.x * w, 1.0 / scale, &self.filter) / w;
            lm.y = ch[1].apply(lm.y * h, 1.0 / scale, &self.filter) / h;
            lm.z = ch[2].apply(lm.z * w, 1.0 / scale, &self.filter) / w;
            *v = VISIBILITY_ALPHA * lm.visibility + (1.0 - VISIBILITY_ALPHA) * *v;
            lm.visibility = *v;
        }
    }
}

/// Mean of the landmarks' bounding box width and height, in pixels
/// (MediaPipe's object scale when no ROI is given).
pub fn bounding_scale(lms: &[Landmark], w: f32, h: f32) -> f32 {
    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for l in lms {
        x0 = x0.min(l.x);
        x1 = x1.max(l.x);
        y0 = y0.min(l.y);
        y1 = y1.max(l.y);
    }
    ((x1 - x0) * w + (y1 - y0) * h) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lm(x: f32, y: f32) -> Landmark {
        Landmark {
            x,
            y,
            z: 0.0,
            visibility: 1.0,
        }
    }

    #[test]
    fn first_frame_passes_through_and_still_points_stay() {
        let mut s = LandmarkSmoother::new(POSE_FILTER);
        let mut a = vec![lm(0.2, 0.3), lm(0.6, 0.9)];
        s.apply(&mut a, 100.0, 100.0, 70.0);
        assert_eq!(a[0].x, 0.2);
        let mut b = vec![lm(0.2, 0.3), lm(0.6, 0.9)];
        s.apply(&mut b, 100.0, 100.0, 70.0);
        assert!((b[1].y - 0.9).abs() < 1e-5);
    }

    #[test]
    fn small_jitter_is_damped() {
        let mut s = LandmarkSmoother::new(POSE_FILTER);
        let mut a = vec![lm(0.2, 0.3), lm(0.6, 0.9)];
        s.apply(&mut a, 100.0, 100.0, 70.0);
        let mut b = vec![lm(0.2, 0.31), lm(0.6, 0.9)];
        s.apply(&mut b, 100.0, 100.0, 70.0);
        assert!(b[0].y > 0.3 && b[0].y < 0.31, "{}", b[0].y);
    }
}

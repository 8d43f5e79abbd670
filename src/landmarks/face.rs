//! Face from pose, as Holistic does it (`face_landmarks_from_pose_cpu`): a box
//! around the pose's 11 face points (3x), the short-range face detector on
//! that crop, a box from the best detection's keypoints (2x), kept from the
//! previous frame's face landmarks while they still fit it, then the 468-point
//! face mesh on the rotated crop (no iris refinement).

use std::time::{Duration, Instant};

use image::RgbImage;

use super::ahead::{RunAhead, take_or_run};
use super::keypoints::{FACE_LANDMARKS, Landmark};
use super::models::{self, ModelSource};
use super::roi::{Roi, TrackingRequirements, rotation_from};
use super::ssd::{self, Anchor, FACE_SSD};
use super::warp::{Border, landmark_crop, warp_roi};
use crate::nn::{Model, ModelError};

/// Side of the face landmark model input.
const LANDMARK_INPUT: usize = 192;
/// Pose landmarks 0..11 are the face points (nose, eyes, ears, mouth).
const POSE_FACE_POINTS: usize = 11;
/// Pose right eye -> left eye sets the rotation of the box from pose.
const POSE_RIGHT_EYE: usize = 5;
/// See [`POSE_RIGHT_EYE`].
const POSE_LEFT_EYE: usize = 2;
/// `face_landmarks_from_pose_to_recrop_roi`: scale of the pose face box.
const FROM_POSE_SCALE: f32 = 3.0;
/// `face_detection_front_detections_to_roi`: scale and shift of the
/// detection's keypoint box.
const FROM_DETECTION_SCALE: f32 = 2.0;
/// See [`FROM_DETECTION_SCALE`].
const FROM_DETECTION_SHIFT_Y: f32 = -0.1;
/// `face_landmarks_to_roi`: mesh points 33 -> 263 (outer eye corners) set the
/// rotation of the box from the previous landmarks.
const MESH_EYE_CORNERS: (usize, usize) = (33, 263);
/// `face_landmarks_to_roi`: scale of the previous landmarks' box.
const FROM_LANDMARKS_SCALE: f32 = 1.5;
/// Face presence (after the sigmoid) a mesh needs to be kept.
const MIN_PRESENCE: f32 = 0.5;
/// `face_tracking`: when the previous frame's ROI is kept.
const TRACKING: TrackingRequirements = TrackingRequirements {
    rotation_degrees: 15.0,
    translation: 0.1,
    scale: 0.3,
    recrop_margin: -0.2,
};

/// Time spent on the face in the last frame.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaceTimings {
    /// Face detector with its crop, decoding, NMS and ROI maths.
    pub detection: Duration,
    /// Face landmark model with its crop and projection.
    pub landmarks: Duration,
    /// The landmarks came from the run made ahead on the tracked rect.
    pub ran_ahead: bool,
}

impl FaceTimings {
    /// Both stages together.
    pub fn total(&self) -> Duration {
        self.detection + self.landmarks
    }
}

/// The face detector and mesh models, shared by the tracker and the run
/// made ahead of the pose.
pub struct FaceModels {
    detector: Model,
    landmarker: Model,
    anchors: Vec<Anchor>,
}

impl FaceModels {
    /// Loads `face_detection_short_range.onnx` and `face_landmark.onnx` from `dir`.
    pub fn load(dir: &ModelSource) -> Result<FaceModels, ModelError> {
        let side = FACE_SSD.input;
        Ok(FaceModels {
            detector: models::load(dir, "face_detection_short_range.onnx", &[1, side, side, 3])?,
            landmarker: models::load(
                dir,
                "face_landmark.onnx",
                &[1, LANDMARK_INPUT, LANDMARK_INPUT, 3],
            )?,
            anchors: ssd::anchors(&FACE_SSD),
        })
    }
}

/// The previous frame's face, the input buffers and the last frame's
/// timings.
pub struct FaceTracker {
    previous: Option<Vec<Landmark>>,
    detector_input: Vec<f32>,
    landmark_input: Vec<f32>,
    timings: FaceTimings,
}

impl Default for FaceTracker {
    fn default() -> FaceTracker {
        FaceTracker {
            previous: None,
            detector_input: detector_input(),
            landmark_input: vec![0.0; LANDMARK_INPUT * LANDMARK_INPUT * 3],
            timings: FaceTimings::default(),
        }
    }
}

impl FaceTracker {
    /// Forgets the previous frame's face.
    pub fn reset(&mut self) {
        self.previous = None;
    }

    /// Time spent in the last call to [`FaceTracker::process`] (or
    /// [`FaceTracker::locate`] and [`FaceTracker::finish`]).
    pub fn last_timings(&self) -> FaceTimings {
        self.timings
    }

    /// The rect the previous frame's face mesh gives this frame, in an image
    /// of `width` x `height`: where [`FaceTracker::locate`] keeps looking
    /// while the detector agrees.
    pub fn tracked_roi(&self, width: f32, height: f32) -> Option<Roi> {
        self.previous
            .as_deref()
            .map(|prev| roi_from_landmarks(prev, width, height))
    }

    /// The 468 face landmarks (normalised image coordinates) for a frame whose
    /// (smoothed) pose landmarks are `pose`; `None` without a pose or a face.
    pub fn process(
        &mut self,
        models: &FaceModels,
        image: &RgbImage,
        pose: Option<&[Landmark]>,
    ) -> Result<Option<Vec<Landmark>>, ModelError> {
        let roi = self.locate(models, image, pose)?;
        self.finish(models, image, roi, None)
    }

    /// First half of [`FaceTracker::process`]: the rect to run the mesh in
    /// (the detector's, or the tracked one while they agree); `None` without
    /// a pose or a detection.
    pub fn locate(
        &mut self,
        models: &FaceModels,
        image: &RgbImage,
        pose: Option<&[Landmark]>,
    ) -> Result<Option<Roi>, ModelError> {
        let detected = detect_from_pose(models, image, pose, &mut self.detector_input)?;
        Ok(self.locate_in(detected))
    }

    /// [`FaceTracker::locate`] once the detector has looked
    /// ([`detect_from_pose`], which needs no tracking state): the tracked rect
    /// while the detection agrees with it, else the detection's.
    pub fn locate_in(&mut self, detected: Option<Detected>) -> Option<Roi> {
        self.timings = FaceTimings::default();
        let Detected {
            roi: recrop,
            took,
            width: w,
            height: h,
        } = detected?;
        self.timings.detection = took;
        let recrop = recrop?;
        let previous = self.previous.as_deref();
        let tracked = |prev: &[Landmark]| roi_from_landmarks(prev, w, h);
        Some(TRACKING.tracked_or_recrop(previous, tracked, recrop, w, h))
    }

    /// Second half of [`FaceTracker::process`]: the mesh in `roi` (from
    /// [`FaceTracker::locate`]), taken from `ahead` when that run was made on
    /// the very same rect (same crop, same model: the same result), else run
    /// now. Remembers it for the next frame's tracking.
    pub fn finish(
        &mut self,
        models: &FaceModels,
        image: &RgbImage,
        roi: Option<Roi>,
        ahead: Option<FaceAhead>,
    ) -> Result<Option<Vec<Landmark>>, ModelError> {
        let found = match roi {
            None => None,
            Some(roi) => {
                let input = &mut self.landmark_input;
                let taken =
                    take_or_run(&roi, ahead, |roi| face_landmarks(models, image, roi, input));
                self.timings.landmarks = taken.took;
                self.timings.ran_ahead = taken.ran_ahead;
                taken.run?
            }
        };
        self.previous.clone_from(&found);
        Ok(found)
    }
}

/// A face mesh run made ahead of time on the tracked rect.
pub type FaceAhead = RunAhead<Option<Vec<Landmark>>>;

/// Runs the face mesh on the tracked rect while the pose of the frame is
/// still being found, as [`super::hands::HandsAhead`] does for the hands:
/// the rect depends only on the previous frame, and the detector keeps it in
/// most frames.
pub struct FaceAheadRunner {
    input: Vec<f32>,
}

impl Default for FaceAheadRunner {
    fn default() -> FaceAheadRunner {
        FaceAheadRunner {
            input: vec![0.0; LANDMARK_INPUT * LANDMARK_INPUT * 3],
        }
    }
}

impl FaceAheadRunner {
    /// The face mesh in `roi`, when there is one.
    pub fn run(
        &mut self,
        models: &FaceModels,
        image: &RgbImage,
        roi: Option<Roi>,
    ) -> Option<FaceAhead> {
        let input = &mut self.input;
        roi.map(|roi| RunAhead::on(roi, |roi| face_landmarks(models, image, roi, input)))
    }
}

/// What the face detector made of a frame's face, from the pose alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detected {
    /// The best detection's rect, if any.
    roi: Option<Roi>,
    /// The detector and its rect maths.
    took: Duration,
    width: f32,
    height: f32,
}

/// The face detector on the rect from `pose` (cropping into `input`); `None`
/// without a pose. Reads no tracking state, so a frame's detection can run
/// while the previous frame's mesh does.
pub fn detect_from_pose(
    models: &FaceModels,
    image: &RgbImage,
    pose: Option<&[Landmark]>,
    input: &mut [f32],
) -> Result<Option<Detected>, ModelError> {
    let Some(face_points) = pose.and_then(|p| p.get(..POSE_FACE_POINTS)) else {
        return Ok(None);
    };
    let (w, h) = (image.width() as f32, image.height() as f32);
    let started = Instant::now();
    let from_pose = roi_from_pose(face_points, w, h);
    let roi = detect(models, image, &from_pose, input)?;
    Ok(Some(Detected {
        roi,
        took: started.elapsed(),
        width: w,
        height: h,
    }))
}

/// A buffer for the face detector's input.
pub fn detector_input() -> Vec<f32> {
    let side = FACE_SSD.input;
    vec![0.0; side * side * 3]
}

/// The face detector on the ROI from pose (cropped into `input`): the best
/// detection's ROI.
fn detect(
    models: &FaceModels,
    image: &RgbImage,
    from_pose: &Roi,
    input: &mut [f32],
) -> Result<Option<Roi>, ModelError> {
    // The ROI from pose is square in pixels, so the aspect-keeping crop
    // the graph asks for needs no letterbox.
    warp_roi(
        image,
        from_pose,
        FACE_SSD.input,
        Border::Zero,
        -1.0,
        1.0,
        input,
    );
    let out = models.detector.run(input)?;
    let boxes_len = models.anchors.len() * FACE_SSD.coords();
    let (Some(boxes), Some(scores)) = (
        out.iter().find(|o| o.len() == boxes_len),
        out.iter().find(|o| o.len() == models.anchors.len()),
    ) else {
        return Ok(None);
    };
    let detections = ssd::decode(
        &FACE_SSD,
        boxes,
        scores,
        &models.anchors,
        FACE_SSD.min_score,
    );
    let Some(best) = ssd::weighted_nms(detections, FACE_SSD.nms_iou)
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let (w, h) = (image.width() as f32, image.height() as f32);
    let keypoints: Vec<[f32; 2]> = best
        .keypoints
        .iter()
        .map(|k| from_pose.project(*k, w, h))
        .collect();
    Ok(roi_from_detection(&keypoints, w, h))
}

/// Runs the face mesh model on `roi` (cropped into `input`); landmarks in
/// image coordinates.
fn face_landmarks(
    models: &FaceModels,
    image: &RgbImage,
    roi: &Roi,
    input: &mut [f32],
) -> Result<Option<Vec<Landmark>>, ModelError> {
    // The graph stretches the ROI to the tensor; every face ROI is square
    // in pixels, so this is the same crop.
    landmark_crop(image, roi, LANDMARK_INPUT, input);
    let out = models.landmarker.run(input)?;
    let (Some(raw), Some(flag)) = (
        out.iter().find(|o| o.len() == FACE_LANDMARKS * 3),
        out.iter().find(|o| o.len() == 1).and_then(|f| f.first()),
    ) else {
        return Ok(None);
    };
    if sigmoid(*flag) <= MIN_PRESENCE {
        return Ok(None);
    }
    let (w, h) = (image.width() as f32, image.height() as f32);
    let side = LANDMARK_INPUT as f32;
    let landmarks = raw
        .chunks_exact(3)
        .map(|v| {
            let p = roi.project([v[0] / side, v[1] / side], w, h);
            Landmark::xyz(p[0], p[1], v[2] / side * roi.w)
        })
        .collect();
    Ok(Some(landmarks))
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `LandmarksToDetectionCalculator`'s box: (xmin, ymin, xmax, ymax). Its
/// maxima start at the smallest positive float, not the lowest one; kept.
fn landmark_box(points: impl Iterator<Item = [f32; 2]>) -> [f32; 4] {
    points.fold(
        [f32::MAX, f32::MAX, f32::MIN_POSITIVE, f32::MIN_POSITIVE],
        |b, p| {
            [
                b[0].min(p[0]),
                b[1].min(p[1]),
                b[2].max(p[0]),
                b[3].max(p[1]),
            ]
        },
    )
}

/// An axis-aligned box (xmin, ymin, xmax, ymax) as a ROI turned by `rotation`.
fn box_roi(b: [f32; 4], rotation: f32) -> Roi {
    Roi {
        x: (b[0] + b[2]) / 2.0,
        y: (b[1] + b[3]) / 2.0,
        w: b[2] - b[0],
        h: b[3] - b[1],
        rotation,
    }
}

/// `FaceLandmarksFromPoseToRecropRoi`: the box of the pose's face points,
/// turned so right eye -> left eye is horizontal, squared and tripled.
fn roi_from_pose(face_points: &[Landmark], w: f32, h: f32) -> Roi {
    let at = |i: usize| face_points.get(i).map_or([0.0, 0.0], |l| [l.x, l.y]);
    let rotation = rotation_from(at(POSE_RIGHT_EYE), at(POSE_LEFT_EYE), 0.0, w, h);
    let bbox = landmark_box(face_points.iter().map(|l| [l.x, l.y]));
    box_roi(bbox, rotation).transformed([FROM_POSE_SCALE, FROM_POSE_SCALE], [0.0, 0.0], true, w, h)
}

/// `FaceDetectionFrontDetectionsToRoi`: the box of the detection's keypoints
/// (image coordinates), turned so right eye -> left eye is horizontal,
/// shifted up a little, squared and doubled. `None` with under 2 keypoints.
fn roi_from_detection(keypoints: &[[f32; 2]], w: f32, h: f32) -> Option<Roi> {
    let (Some(right_eye), Some(left_eye)) = (keypoints.first(), keypoints.get(1)) else {
        return None;
    };
    let rotation = rotation_from(*right_eye, *left_eye, 0.0, w, h);
    let bbox = keypoints
        .iter()
        .fold([f32::MAX, f32::MAX, f32::MIN, f32::MIN], |b, p| {
            [
                b[0].min(p[0]),
                b[1].min(p[1]),
                b[2].max(p[0]),
                b[3].max(p[1]),
            ]
        });
    Some(box_roi(bbox, rotation).transformed(
        [FROM_DETECTION_SCALE, FROM_DETECTION_SCALE],
        [0.0, FROM_DETECTION_SHIFT_Y],
        true,
        w,
        h,
    ))
}

/// `FaceLandmarksToRoi`: the (axis-aligned) box of the previous face mesh,
/// turned by its outer eye corners, squared and scaled 1.5x.
fn roi_from_landmarks(lms: &[Landmark], w: f32, h: f32) -> Roi {
    let at = |i: usize| lms.get(i).map_or([0.0, 0.0], |l| [l.x, l.y]);
    let (start, end) = MESH_EYE_CORNERS;
    let rotation = rotation_from(at(start), at(end), 0.0, w, h);
    let bbox = landmark_box(lms.iter().map(|l| [l.x, l.y]));
    box_roi(bbox, rotation).transformed(
        [FROM_LANDMARKS_SCALE, FROM_LANDMARKS_SCALE],
        [0.0, 0.0],
        true,
        w,
        h,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-5
    }

    /// Pose face points of an upright face centred at (0.5, 0.3) in a
    /// 640x480 frame: eyes 0.04 apart, mouth 0.05 below them.
    fn upright_pose_face() -> Vec<Landmark> {
        let at = |x: f32, y: f32| Landmark {
            x,
            y,
            z: 0.0,
            visibility: 1.0,
        };
        vec![
            at(0.50, 0.30), // nose
            at(0.51, 0.28),
            at(0.52, 0.28), // left eye
            at(0.53, 0.28),
            at(0.49, 0.28),
            at(0.48, 0.28), // right eye
            at(0.47, 0.28),
            at(0.55, 0.29), // left ear
            at(0.45, 0.29), // right ear
            at(0.51, 0.33),
            at(0.49, 0.33),
        ]
    }

    #[test]
    fn pose_box_is_the_face_points_box_squared_and_tripled() {
        let roi = roi_from_pose(&upright_pose_face(), 640.0, 480.0);
        assert!(close(roi.rotation, 0.0), "{}", roi.rotation);
        // Box 0.45..0.55 x 0.28..0.33: 64 x 24 px, squared to 64 px, times 3.
        assert!(close(roi.x, 0.5) && close(roi.y, 0.305), "{roi:?}");
        assert!(
            close(roi.w, 0.3) && close(roi.h, 3.0 * 64.0 / 480.0),
            "{roi:?}"
        );
    }

    #[test]
    fn pose_box_turns_with_the_eyes() {
        // Head tilted: left eye (image right) lower than right eye by as much
        // as it is to the right: the box turns 45 degrees clockwise.
        let mut face = upright_pose_face();
        face[POSE_LEFT_EYE].y = 0.28 + 0.04 * 640.0 / 480.0;
        let roi = roi_from_pose(&face, 640.0, 480.0);
        assert!(
            close(roi.rotation, std::f32::consts::FRAC_PI_4),
            "{}",
            roi.rotation
        );
    }

    #[test]
    fn detection_box_from_keypoints_is_shifted_up_squared_and_doubled() {
        // Right eye, left eye, nose, mouth, right and left tragion (200x200 px).
        let kp = [
            [0.4, 0.4],
            [0.6, 0.4],
            [0.5, 0.5],
            [0.5, 0.6],
            [0.3, 0.45],
            [0.7, 0.45],
        ];
        let roi = roi_from_detection(&kp, 200.0, 200.0).unwrap();
        assert!(close(roi.rotation, 0.0));
        // Box 0.3..0.7 x 0.4..0.6, centre (0.5, 0.5), shifted up by 10% of 0.2.
        assert!(close(roi.x, 0.5) && close(roi.y, 0.48), "{roi:?}");
        assert!(close(roi.w, 0.8) && close(roi.h, 0.8), "{roi:?}");
        assert!(roi_from_detection(&kp[..1], 200.0, 200.0).is_none());
    }

    #[test]
    fn landmark_box_follows_the_eye_corners() {
        // A mesh on a 0.2-wide grid whose outer eye corners lie on a vertical
        // line going down the image: the face lies on its side, a quarter turn.
        let mut lms: Vec<Landmark> = (0..FACE_LANDMARKS)
            .map(|i| {
                let (c, r) = ((i % 22) as f32 / 21.0, (i / 22) as f32 / 21.0);
                Landmark::xyz(0.4 + 0.2 * c, 0.4 + 0.2 * r, 0.0)
            })
            .collect();
        lms[33] = Landmark::xyz(0.5, 0.45, 0.0);
        lms[263] = Landmark::xyz(0.5, 0.55, 0.0);
        let roi = roi_from_landmarks(&lms, 100.0, 100.0);
        assert!(
            close(roi.rotation, std::f32::consts::FRAC_PI_2),
            "{}",
            roi.rotation
        );
        assert!(close(roi.x, 0.5) && close(roi.y, 0.5), "{roi:?}");
        assert!(close(roi.w, 0.3) && close(roi.h, 0.3), "{roi:?}");
    }

    #[test]
    fn box_maxima_start_at_the_smallest_positive_float() {
        let b = landmark_box([[-0.2, -0.1], [-0.1, -0.3]].into_iter());
        assert_eq!(b, [-0.2, -0.3, f32::MIN_POSITIVE, f32::MIN_POSITIVE]);
    }

    #[test]
    fn no_pose_or_a_blank_frame_gives_no_face() {
        let models = FaceModels::load(&ModelSource::BuiltIn).unwrap();
        let mut tracker = FaceTracker::default();
        let frame = RgbImage::from_pixel(640, 480, image::Rgb([128, 128, 128]));
        assert_eq!(tracker.process(&models, &frame, None).unwrap(), None);
        assert_eq!(tracker.last_timings(), FaceTimings::default());
        let pose = upright_pose_face();
        assert_eq!(tracker.process(&models, &frame, Some(&pose)).unwrap(), None);
        let t = tracker.last_timings();
        assert!(t.detection > Duration::ZERO && t.landmarks == Duration::ZERO);
    }
}

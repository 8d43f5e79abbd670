//! Pose: detector (letterboxed, anchors, weighted NMS) when not tracking,
//! detection-to-ROI, pose landmarks on the rotated ROI crop projected back to
//! the image, visibility by sigmoid, and ROI tracking from the previous
//! frame's alignment landmarks (33 hip centre, 34 body scale point).

use std::time::{Duration, Instant};

use image::RgbImage;

use super::keypoints::{Landmark, POSE_LANDMARKS};
use super::models::{self, ModelSource};
use super::roi::{Roi, alignment_rect};
use super::smoothing::{AUX_FILTER, LandmarkSmoother, POSE_FILTER, bounding_scale};
use super::ssd::{self, Anchor};
use super::warp::{Border, landmark_crop, letterbox_roi, remove_letterbox, warp_roi};
use crate::nn::{Model, ModelError};

/// Side of the pose landmark model input.
const LANDMARK_INPUT: usize = 256;
/// Landmarks the model outputs (33 body + 6 auxiliary).
const ALL_LANDMARKS: usize = 39;
/// Values per landmark: x, y, z, visibility, presence.
const VALUES: usize = 5;
/// ROI enlargement around the alignment rect.
const ROI_SCALE: f32 = 1.25;
/// Pose presence needed to keep a pose (and tracking).
const MIN_PRESENCE: f32 = 0.5;

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Pose detector + landmark model with the previous frame's ROI.
pub struct PoseTracker {
    detector: Model,
    landmarker: Model,
    anchors: Vec<Anchor>,
    previous: Option<Roi>,
    body_filter: LandmarkSmoother,
    aux_filter: LandmarkSmoother,
    det_input: Vec<f32>,
    lm_input: Vec<f32>,
    detection_time: Option<Duration>,
}

impl PoseTracker {
    /// Loads `pose_detection.onnx` and `pose_landmark_full.onnx` from `dir`.
    pub fn new(dir: &ModelSource) -> Result<PoseTracker, ModelError> {
        let side = ssd::POSE_DETECTOR_INPUT;
        Ok(PoseTracker {
            detector: models::load(dir, "pose_detection.onnx", &[1, side, side, 3])?,
            landmarker: models::load(
                dir,
                "pose_landmark_full.onnx",
                &[1, LANDMARK_INPUT, LANDMARK_INPUT, 3],
            )?,
            anchors: ssd::pose_anchors(),
            previous: None,
            body_filter: LandmarkSmoother::new(POSE_FILTER),
            aux_filter: LandmarkSmoother::new(AUX_FILTER),
            det_input: vec![0.0; side * side * 3],
            lm_input: vec![0.0; LANDMARK_INPUT * LANDMARK_INPUT * 3],
            detection_time: None,
        })
    }

    /// Forgets the tracked ROI (next frame runs the detector).
    pub fn reset(&mut self) {
        self.previous = None;
        self.body_filter.reset();
        self.aux_filter.reset();
    }

    /// Runs the detector on the whole image; returns the pose ROI, if any.
    pub fn detect(&mut self, image: &RgbImage) -> Result<Option<Roi>, ModelError> {
        let (roi, pad) = letterbox_roi(image.width(), image.height());
        let side = ssd::POSE_DETECTOR_INPUT;
        warp_roi(
            image,
            &roi,
            side,
            Border::Zero,
            -1.0,
            1.0,
            &mut self.det_input,
        );
        let out = self.detector.run(&self.det_input)?;
        let (Some(boxes), Some(scores)) = (out.first(), out.get(1)) else {
            return Ok(None);
        };
        let dets = ssd::decode_pose(boxes, scores, &self.anchors, ssd::POSE_MIN_SCORE);
        let Some(best) = ssd::weighted_nms(dets, ssd::POSE_NMS_IOU)
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let (w, h) = (image.width() as f32, image.height() as f32);
        let (Some(c), Some(s)) = (best.keypoints.first(), best.keypoints.get(1)) else {
            return Ok(None);
        };
        let rect = alignment_rect(remove_letterbox(*c, pad), remove_letterbox(*s, pad), w, h);
        Ok(Some(rect.transformed(
            [ROI_SCALE, ROI_SCALE],
            [0.0, 0.0],
            true,
            w,
            h,
        )))
    }

    /// Time the detector took in the last [`PoseTracker::process`]; `None`
    /// when that frame was tracked from the previous one.
    pub fn last_detection_time(&self) -> Option<Duration> {
        self.detection_time
    }

    /// Pose landmarks for one frame (tracking from the previous frame when it
    /// had a pose); `None` when no pose is found.
    pub fn process(&mut self, image: &RgbImage) -> Result<Option<Vec<Landmark>>, ModelError> {
        self.detection_time = None;
        let roi = match self.previous {
            Some(r) => Some(r),
            None => {
                let started = Instant::now();
                let found = self.detect(image)?;
                self.detection_time = Some(started.elapsed());
                found
            }
        };
        let Some(roi) = roi else {
            self.reset();
            return Ok(None);
        };
        let all = self.landmarks_in(image, &roi)?;
        let Some(mut all) = all else {
            self.reset();
            return Ok(None);
        };
        let (w, h) = (image.width() as f32, image.height() as f32);
        // Holistic smooths the body and the auxiliary (ROI) landmarks apart;
        // the next frame's ROI comes from the smoothed auxiliary points.
        // Both filters scale velocities by the size of the rect the raw
        // auxiliary points span (pose_landmark_filtering's OBJECT_SCALE_ROI).
        let scale = match (all.get(33), all.get(34)) {
            (Some(c), Some(s)) => 2.0 * ((s.x - c.x) * w).hypot((s.y - c.y) * h),
            _ => bounding_scale(&all, w, h),
        };
        let split = POSE_LANDMARKS.min(all.len());
        let (body, rest) = all.split_at_mut(split);
        self.body_filter.apply(body, w, h, scale);
        let aux_len = rest.len().min(2);
        self.aux_filter.apply(&mut rest[..aux_len], w, h, scale);
        self.previous = match (all.get(33), all.get(34)) {
            (Some(c), Some(s)) => Some(alignment_rect([c.x, c.y], [s.x, s.y], w, h).transformed(
                [ROI_SCALE, ROI_SCALE],
                [0.0, 0.0],
                true,
                w,
                h,
            )),
            _ => None,
        };
        Ok(Some(all.into_iter().take(POSE_LANDMARKS).collect()))
    }

    /// Runs the landmark model on `roi`; all 39 landmarks in image coordinates.
    fn landmarks_in(
        &mut self,
        image: &RgbImage,
        roi: &Roi,
    ) -> Result<Option<Vec<Landmark>>, ModelError> {
        landmark_crop(image, roi, LANDMARK_INPUT, &mut self.lm_input);
        let out = self.landmarker.run(&self.lm_input)?;
        let (Some(raw), Some(flag)) = (out.first(), out.get(1).and_then(|f| f.first())) else {
            return Ok(None);
        };
        if *flag < MIN_PRESENCE {
            return Ok(None);
        }
        let (w, h) = (image.width() as f32, image.height() as f32);
        let side = LANDMARK_INPUT as f32;
        let heatmap = out.get(2).map(Vec::as_slice).unwrap_or(&[]);
        let lms = raw
            .chunks_exact(VALUES)
            .take(ALL_LANDMARKS)
            .enumerate()
            .map(|(k, v)| {
                let crop = refine_from_heatmap(heatmap, k, [v[0] / side, v[1] / side]);
                let p = roi.project(crop, w, h);
                Landmark {
                    x: p[0],
                    y: p[1],
                    z: v[2] / side * roi.w,
                    visibility: sigmoid(v[3]),
                }
            })
            .collect();
        Ok(Some(lms))
    }
}

/// Side of the pose heatmap (HWC, one channel per landmark).
const HEATMAP_SIDE: usize = 64;
/// Window of the heatmap refinement. The graph asks for 7, but
/// `mp.solutions` (MediaPipe's Python solutions, which made SignPose's data and
/// our reference) re-serialises the expanded graph through Python protobuf,
/// which does not know `RefineLandmarksFromHeatmapCalculatorOptions` and drops
/// them, so the calculator runs with its default, 9. We match what produced
/// the data.
const HEATMAP_KERNEL: i64 = 9;
/// Minimum heatmap confidence in the window to refine a landmark.
const HEATMAP_MIN_CONFIDENCE: f32 = 0.5;

/// Refines landmark `k` (crop-normalised) to the confidence-weighted mean of
/// its heatmap window, as MediaPipe's RefineLandmarksFromHeatmap does.
fn refine_from_heatmap(heatmap: &[f32], k: usize, p: [f32; 2]) -> [f32; 2] {
    let side = HEATMAP_SIDE as i64;
    if heatmap.len() != HEATMAP_SIDE * HEATMAP_SIDE * ALL_LANDMARKS {
        return p;
    }
    let cx = (p[0] * side as f32) as i64;
    let cy = (p[1] * side as f32) as i64;
    // A landmark off the heatmap stays as it is. (The cast truncates toward
    // zero like MediaPipe's, so points just left of or above the crop count
    // as column or row 0.)
    if cx < 0 || cx >= side || cy < 0 || cy >= side {
        return p;
    }
    let half = HEATMAP_KERNEL / 2;
    let (mut sum, mut sx, mut sy, mut max) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
    for row in (cy - half).max(0)..=(cy + half).min(side - 1) {
        for col in (cx - half).max(0)..=(cx + half).min(side - 1) {
            let c = sigmoid(heatmap[((row * side + col) as usize) * ALL_LANDMARKS + k]);
            sum += c;
            sx += col as f32 * c;
            sy += row as f32 * c;
            max = max.max(c);
        }
    }
    if max < HEATMAP_MIN_CONFIDENCE || sum <= 0.0 {
        return p;
    }
    [sx / sum / side as f32, sy / sum / side as f32]
}

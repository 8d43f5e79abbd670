//! SSD detector post-processing shared by the pose and face detectors:
//! anchors (`SsdAnchorsCalculator` with fixed anchor size), box/keypoint
//! decoding (`TensorsToDetectionsCalculator`) and weighted non-maximum
//! suppression, with the constants of MediaPipe's `pose_detection_cpu.pbtxt`
//! and `face_detection_short_range.pbtxt` (mediapipe 0.10.14).

/// One SSD anchor: centre and size in normalised input coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anchor {
    /// Centre x in [0, 1].
    pub x: f32,
    /// Centre y in [0, 1].
    pub y: f32,
    /// Width (1.0 with fixed anchor size).
    pub w: f32,
    /// Height (1.0 with fixed anchor size).
    pub h: f32,
}

/// What an SSD detector's anchors and raw outputs look like.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SsdSpec {
    /// Side of the square detector input, in pixels (also the decoding scale).
    pub input: usize,
    /// Feature map strides, one per SSD layer.
    pub strides: &'static [usize],
    /// Keypoints per detection.
    pub keypoints: usize,
    /// Minimum sigmoid score of a detection.
    pub min_score: f32,
    /// IoU above which weighted NMS merges detections.
    pub nms_iou: f32,
}

impl SsdSpec {
    /// Raw values per anchor: 4 box values then 2 per keypoint.
    pub const fn coords(&self) -> usize {
        4 + 2 * self.keypoints
    }
}

/// The pose detector (`pose_detection_cpu.pbtxt`): keypoint 0 is the hip
/// centre, 1 gives the body's size and rotation.
pub const POSE_SSD: SsdSpec = SsdSpec {
    input: 224,
    strides: &[8, 16, 32, 32, 32],
    keypoints: 4,
    min_score: 0.5,
    nms_iou: 0.3,
};

/// The short-range face detector (`face_detection_short_range.pbtxt`):
/// keypoints right eye, left eye, nose tip, mouth, right and left ear tragion.
pub const FACE_SSD: SsdSpec = SsdSpec {
    input: 128,
    strides: &[8, 16, 16, 16],
    keypoints: 6,
    min_score: 0.5,
    nms_iou: 0.3,
};

/// Side of the square pose detector input, in pixels.
pub const POSE_DETECTOR_INPUT: usize = POSE_SSD.input;
/// Keypoints per pose detection (hip centre, full-body size/rotation, ...).
pub const POSE_DETECTION_KEYPOINTS: usize = POSE_SSD.keypoints;
/// Raw values per anchor: 4 box values then 2 per keypoint.
pub const POSE_DETECTION_COORDS: usize = POSE_SSD.coords();
/// Scores are clipped to +-this before the sigmoid.
const SCORE_CLIP: f32 = 100.0;
/// Minimum sigmoid score of a pose detection.
pub const POSE_MIN_SCORE: f32 = POSE_SSD.min_score;
/// IoU above which weighted NMS merges detections.
pub const POSE_NMS_IOU: f32 = POSE_SSD.nms_iou;

/// Anchors of the pose detector.
pub fn pose_anchors() -> Vec<Anchor> {
    anchors(&POSE_SSD)
}

/// Anchors of a detector: consecutive layers sharing a stride are merged, and
/// each layer adds two anchors per cell (aspect ratio 1 and the interpolated
/// scale), all with fixed size 1, offset 0.5 of a cell.
pub fn anchors(spec: &SsdSpec) -> Vec<Anchor> {
    let strides = spec.strides;
    let mut anchors = Vec::new();
    let mut layer = 0;
    while layer < strides.len() {
        let stride = strides[layer];
        let mut per_cell = 0;
        while layer < strides.len() && strides[layer] == stride {
            per_cell += 2;
            layer += 1;
        }
        let cells = spec.input.div_ceil(stride);
        for row in 0..cells {
            for col in 0..cells {
                let x = (col as f32 + 0.5) / cells as f32;
                let y = (row as f32 + 0.5) / cells as f32;
                for _ in 0..per_cell {
                    anchors.push(Anchor {
                        x,
                        y,
                        w: 1.0,
                        h: 1.0,
                    });
                }
            }
        }
    }
    anchors
}

/// A decoded detection in normalised detector-input coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Sigmoid score.
    pub score: f32,
    /// Box: xmin, ymin, xmax, ymax.
    pub bbox: [f32; 4],
    /// Keypoints (x, y).
    pub keypoints: Vec<[f32; 2]>,
}

impl Detection {
    fn area(&self) -> f32 {
        (self.bbox[2] - self.bbox[0]).max(0.0) * (self.bbox[3] - self.bbox[1]).max(0.0)
    }

    /// Intersection over union of two boxes (0 when either is empty).
    pub fn iou(&self, other: &Detection) -> f32 {
        let ix = (self.bbox[2].min(other.bbox[2]) - self.bbox[0].max(other.bbox[0])).max(0.0);
        let iy = (self.bbox[3].min(other.bbox[3]) - self.bbox[1].max(other.bbox[1])).max(0.0);
        let inter = ix * iy;
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Decodes raw pose detector boxes and scores (see [`decode`]).
pub fn decode_pose(
    raw_boxes: &[f32],
    raw_scores: &[f32],
    anchors: &[Anchor],
    min_score: f32,
) -> Vec<Detection> {
    decode(&POSE_SSD, raw_boxes, raw_scores, anchors, min_score)
}

/// Decodes raw boxes (`anchors.len() * spec.coords()`, x-first order) and raw
/// scores (one logit per anchor), keeping scores >= `min_score` and, as
/// MediaPipe does, dropping boxes of negative or NaN size.
pub fn decode(
    spec: &SsdSpec,
    raw_boxes: &[f32],
    raw_scores: &[f32],
    anchors: &[Anchor],
    min_score: f32,
) -> Vec<Detection> {
    let scale = spec.input as f32;
    let coords = spec.coords();
    let mut out = Vec::new();
    for (i, anchor) in anchors.iter().enumerate() {
        let (Some(&logit), Some(raw)) = (
            raw_scores.get(i),
            raw_boxes.get(i * coords..(i + 1) * coords),
        ) else {
            break;
        };
        let score = sigmoid(logit.clamp(-SCORE_CLIP, SCORE_CLIP));
        if score < min_score {
            continue;
        }
        let cx = raw[0] / scale * anchor.w + anchor.x;
        let cy = raw[1] / scale * anchor.h + anchor.y;
        let w = raw[2] / scale * anchor.w;
        let h = raw[3] / scale * anchor.h;
        // `!(x >= 0)` also rejects NaN.
        if !(w >= 0.0 && h >= 0.0) {
            continue;
        }
        let keypoints = (0..spec.keypoints)
            .map(|k| {
                [
                    raw[4 + 2 * k] / scale * anchor.w + anchor.x,
                    raw[5 + 2 * k] / scale * anchor.h + anchor.y,
                ]
            })
            .collect();
        out.push(Detection {
            score,
            bbox: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
            keypoints,
        });
    }
    out
}

/// Weighted NMS: the best remaining detection absorbs every detection that
/// overlaps it by more than `iou`, its box and keypoints becoming the
/// score-weighted mean of the group while it keeps its own score.
pub fn weighted_nms(mut detections: Vec<Detection>, iou: f32) -> Vec<Detection> {
    detections.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = Vec::new();
    let mut queue = std::collections::VecDeque::from(detections);
    while let Some(top) = queue.pop_front() {
        let (group, rest): (Vec<Detection>, Vec<Detection>) =
            queue.into_iter().partition(|d| d.iou(&top) > iou);
        queue = rest.into();
        let total: f32 = top.score + group.iter().map(|d| d.score).sum::<f32>();
        let mut merged = top.clone();
        if !group.is_empty() && total > 0.0 {
            merged.bbox = [0.0; 4];
            merged.keypoints.iter_mut().for_each(|k| *k = [0.0; 2]);
            for d in std::iter::once(&top).chain(&group) {
                let w = d.score / total;
                for (m, v) in merged.bbox.iter_mut().zip(d.bbox) {
                    *m += v * w;
                }
                for (m, v) in merged.keypoints.iter_mut().zip(&d.keypoints) {
                    m[0] += v[0] * w;
                    m[1] += v[1] * w;
                }
            }
        }
        out.push(merged);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pose_anchor_count_and_layout() {
        let a = pose_anchors();
        assert_eq!(a.len(), 2254);
        assert_eq!(
            a[0],
            Anchor {
                x: 0.5 / 28.0,
                y: 0.5 / 28.0,
                w: 1.0,
                h: 1.0
            }
        );
        assert_eq!(a[1], a[0]);
        assert_eq!(a[1568].x, 0.5 / 14.0);
        assert_eq!(a[1568 + 392].x, 0.5 / 7.0);
        assert!((a[2253].x - 6.5 / 7.0).abs() < 1e-6);
    }

    #[test]
    fn face_anchor_count_and_layout() {
        let a = anchors(&FACE_SSD);
        // 16x16 cells x 2 (stride 8) + 8x8 cells x 6 (three stride-16 layers).
        assert_eq!(a.len(), 896);
        assert_eq!(a[0].x, 0.5 / 16.0);
        assert_eq!(a[511].x, 15.5 / 16.0);
        assert_eq!(a[512].x, 0.5 / 8.0);
        assert!(a[512..518].iter().all(|b| *b == a[512]));
        assert_eq!(a[518].x, 1.5 / 8.0);
        assert!((a[895].y - 7.5 / 8.0).abs() < 1e-6);
    }

    #[test]
    fn decode_reads_every_face_keypoint_and_drops_negative_boxes() {
        let anchors = [Anchor {
            x: 0.25,
            y: 0.75,
            w: 1.0,
            h: 1.0,
        }];
        let mut raw = [0.0f32; 16];
        raw[2] = 12.8; // w 0.1
        raw[3] = 12.8;
        raw[14] = 12.8; // keypoint 5 x: +0.1
        raw[15] = -12.8;
        let d = decode(&FACE_SSD, &raw, &[1.0], &anchors, 0.5);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].keypoints.len(), 6);
        let k = d[0].keypoints[5];
        assert!((k[0] - 0.35).abs() < 1e-6 && (k[1] - 0.65).abs() < 1e-6);
        raw[2] = -1.0;
        assert!(decode(&FACE_SSD, &raw, &[1.0], &anchors, 0.5).is_empty());
    }

    #[test]
    fn decode_offsets_from_anchor() {
        let anchors = [Anchor {
            x: 0.5,
            y: 0.5,
            w: 1.0,
            h: 1.0,
        }];
        let mut raw = [0.0f32; POSE_DETECTION_COORDS];
        raw[0] = 22.4; // +0.1
        raw[2] = 44.8; // w 0.2
        raw[3] = 22.4; // h 0.1
        raw[4] = -22.4;
        let d = decode_pose(&raw, &[3.0], &anchors, 0.5);
        assert_eq!(d.len(), 1);
        let b = d[0].bbox;
        assert!((b[0] - 0.5).abs() < 1e-6 && (b[2] - 0.7).abs() < 1e-6);
        assert!((b[1] - 0.45).abs() < 1e-6 && (b[3] - 0.55).abs() < 1e-6);
        assert!((d[0].keypoints[0][0] - 0.4).abs() < 1e-6);
        assert!(decode_pose(&raw, &[-3.0], &anchors, 0.5).is_empty());
    }

    fn det(score: f32, bbox: [f32; 4]) -> Detection {
        Detection {
            score,
            bbox,
            keypoints: vec![[bbox[0], bbox[1]]],
        }
    }

    #[test]
    fn weighted_nms_merges_overlaps_and_keeps_separate() {
        let d = vec![
            det(0.6, [0.1, 0.1, 0.5, 0.5]),
            det(0.9, [0.0, 0.0, 0.4, 0.4]),
            det(0.8, [0.6, 0.6, 0.9, 0.9]),
        ];
        let out = weighted_nms(d, 0.3);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        let x = (0.9 * 0.0 + 0.6 * 0.1) / 1.5;
        assert!((out[0].bbox[0] - x).abs() < 1e-6);
        assert!((out[0].keypoints[0][0] - x).abs() < 1e-6);
        assert_eq!(out[1].bbox, [0.6, 0.6, 0.9, 0.9]);
    }
}

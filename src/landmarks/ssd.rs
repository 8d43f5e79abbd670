//! Pose detector post-processing: SSD anchors, box/keypoint decoding and
//! weighted non-maximum suppression, with the constants of MediaPipe's
//! `pose_detection_cpu.pbtxt` (mediapipe 0.10.14).

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

/// Side of the square pose detector input, in pixels.
pub const POSE_DETECTOR_INPUT: usize = 224;
/// Feature map strides of the pose detector, one per SSD layer.
const POSE_STRIDES: [usize; 5] = [8, 16, 32, 32, 32];
/// Keypoints per pose detection (hip centre, full-body size/rotation, ...).
pub const POSE_DETECTION_KEYPOINTS: usize = 4;
/// Raw values per anchor: 4 box values then 2 per keypoint.
pub const POSE_DETECTION_COORDS: usize = 4 + 2 * POSE_DETECTION_KEYPOINTS;
/// Scores are clipped to +-this before the sigmoid.
const SCORE_CLIP: f32 = 100.0;
/// Minimum sigmoid score of a pose detection.
pub const POSE_MIN_SCORE: f32 = 0.5;
/// IoU above which weighted NMS merges detections.
pub const POSE_NMS_IOU: f32 = 0.3;

/// Anchors of the pose detector: layers sharing a stride are merged, and each
/// layer adds two anchors per cell (aspect ratio 1 and the interpolated scale),
/// all with fixed size 1, offset 0.5 of a cell.
pub fn pose_anchors() -> Vec<Anchor> {
    let mut anchors = Vec::new();
    let mut layer = 0;
    while layer < POSE_STRIDES.len() {
        let stride = POSE_STRIDES[layer];
        let mut per_cell = 0;
        while layer < POSE_STRIDES.len() && POSE_STRIDES[layer] == stride {
            per_cell += 2;
            layer += 1;
        }
        let cells = POSE_DETECTOR_INPUT.div_ceil(stride);
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

/// Decodes raw boxes (`anchors.len() * POSE_DETECTION_COORDS`, x-first order)
/// and raw scores (one logit per anchor), keeping scores >= `min_score`.
pub fn decode_pose(
    raw_boxes: &[f32],
    raw_scores: &[f32],
    anchors: &[Anchor],
    min_score: f32,
) -> Vec<Detection> {
    let scale = POSE_DETECTOR_INPUT as f32;
    let mut out = Vec::new();
    for (i, anchor) in anchors.iter().enumerate() {
        let (Some(&logit), Some(raw)) = (
            raw_scores.get(i),
            raw_boxes.get(i * POSE_DETECTION_COORDS..(i + 1) * POSE_DETECTION_COORDS),
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
        let keypoints = (0..POSE_DETECTION_KEYPOINTS)
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

//! Holistic: pose, then both hands from the pose (and the face for the 1662
//! layout), as MediaPipe's `holistic_landmark_cpu` graph wires them; one frame
//! in, SignPose-layout keypoints out, tracking state kept between frames.

use std::time::{Duration, Instant};

use image::RgbImage;

use super::face::{
    self as face_path, Detected, FaceAhead, FaceAheadRunner, FaceModels, FaceTracker,
};
use super::hands::{
    self, HandAhead, HandModels, HandRois, HandTracker, HandsAhead, Recropped, Side,
};
use super::keypoints::{Keypoints, Landmark, Layout};
use super::models::ModelSource;
use super::pose::PoseTracker;
use super::roi::Roi;
use crate::nn::ModelError;
use crate::nn::parallel;

/// What to load and which parts to find.
#[derive(Debug, Clone, PartialEq)]
pub struct HolisticOptions {
    /// Where the ONNX landmark models come from.
    pub models: ModelSource,
    /// 258 (pose + hands) or 1662 (with the face).
    pub layout: Layout,
}

impl Default for HolisticOptions {
    fn default() -> HolisticOptions {
        HolisticOptions {
            models: ModelSource::BuiltIn,
            layout: Layout::PoseHands,
        }
    }
}

/// Time each stage took on the last frame.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimings {
    /// Pose detector; `None` when the pose was tracked from the previous frame.
    pub pose_detection: Option<Duration>,
    /// Pose landmark model with its crop, projection and smoothing.
    pub pose_landmarks: Duration,
    /// Hand re-crop model with its crop: the slower hand (the two run in
    /// parallel).
    pub hand_recrop: Duration,
    /// Hand landmark model with its crop: the slower hand. When a hand's
    /// landmarks were run ahead ([`StageTimings::hands_ahead`]) this time
    /// overlapped the pose landmarks' instead of following it.
    pub hands: Duration,
    /// How many of the frame's hands (0-2) took their landmarks from the run
    /// made ahead on the tracked rect, while the pose was being found.
    pub hands_ahead: u8,
    /// Face path; `None` when the layout has no face.
    pub face: Option<Duration>,
    /// The face mesh came from the run made ahead on the tracked rect.
    pub face_ahead: bool,
    /// The whole frame (pipelined: from its pose's start to its hands' and
    /// face's end, over two steps, the other frame's work in between).
    pub total: Duration,
}

impl StageTimings {
    /// (name, time) of each stage that ran, for metrics and benchmarks.
    pub fn stages(&self) -> Vec<(&'static str, Duration)> {
        let mut out = Vec::with_capacity(6);
        if let Some(d) = self.pose_detection {
            out.push(("pose detect", d));
        }
        out.push(("pose landmarks", self.pose_landmarks));
        out.push(("hand recrop", self.hand_recrop));
        out.push(("hands", self.hands));
        if let Some(d) = self.face {
            out.push(("face", d));
        }
        out
    }
}

/// Left hand, right hand and face of one frame.
type PartsFromPose = (
    Option<Vec<Landmark>>,
    Option<Vec<Landmark>>,
    Option<Vec<Landmark>>,
);

/// Left hand and right hand of one frame.
type BothHands = (Option<Vec<Landmark>>, Option<Vec<Landmark>>);

/// MediaPipe Holistic (model complexity 1, detection and tracking confidence
/// 0.5) on tract.
pub struct Holistic {
    layout: Layout,
    pose: PoseTracker,
    hand_models: HandModels,
    left: HandTracker,
    right: HandTracker,
    ahead: HandsAhead,
    /// Run the tracked hands' landmarks while the pose runs (off only in
    /// the test that holds the results unchanged by it).
    run_ahead: bool,
    face: Option<Face>,
    /// The threads the models run on, one per core: each frame's hands run
    /// beside its pose, and each model's big convolutions are cut into parts
    /// that a free thread takes.
    threads: rayon::ThreadPool,
    timings: StageTimings,
    /// The frame pipelined ([`Holistic::push`]) whose pose is found and whose
    /// hands and face are still to come.
    pending: Option<PoseFound>,
    /// The pipelined pose step's re-crop inputs, (left, right).
    recrop_inputs: [Vec<f32>; 2],
}

/// A frame between the two steps of the pipelined path: its pose found, its
/// hands and face not yet.
struct PoseFound {
    image: RgbImage,
    /// `None` both when no pose was found and for a frame with no pixels.
    pose: Option<Vec<Landmark>>,
    /// The re-crop model's look at each hand (left, right), from the pose.
    hands: [Option<Recropped>; 2],
    /// The face detector's, with the 1662 layout.
    face: Option<Detected>,
    /// No pixels: the frame resets the tracking and finds nothing.
    empty: bool,
    detection: Option<Duration>,
    pose_time: Duration,
    started: Instant,
}

/// A frame out of the pipelined path with its keypoints.
#[derive(Debug)]
pub struct Finished {
    /// The frame, handed back.
    pub image: RgbImage,
    /// Its keypoints, the same as [`Holistic::process`] gives.
    pub keypoints: Keypoints,
}

impl Holistic {
    /// Loads the models the layout needs (the face models only for 1662).
    pub fn new(options: &HolisticOptions) -> Result<Holistic, ModelError> {
        let dir = &options.models;
        Ok(Holistic {
            layout: options.layout,
            pose: PoseTracker::new(dir)?,
            hand_models: HandModels::load(dir)?,
            left: HandTracker::new(Side::Left),
            right: HandTracker::new(Side::Right),
            ahead: HandsAhead::default(),
            run_ahead: true,
            face: if options.layout.has_face() {
                Some(Face {
                    models: FaceModels::load(dir)?,
                    tracker: FaceTracker::default(),
                    ahead: FaceAheadRunner::default(),
                    detector_input: face_path::detector_input(),
                })
            } else {
                None
            },
            threads: parallel::landmark_threads()
                .map_err(|e| ModelError::Threads(e.to_string()))?,
            timings: StageTimings::default(),
            pending: None,
            recrop_inputs: [hands::recrop_input(), hands::recrop_input()],
        })
    }

    /// The layout the keypoints are meant for.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Forgets all tracking (the next frame starts with the pose detector);
    /// a frame pipelined and not yet finished is dropped.
    pub fn reset(&mut self) {
        self.pending = None;
        self.pose.reset();
        self.left.reset();
        self.right.reset();
        if let Some(face) = &mut self.face {
            face.tracker.reset();
        }
    }

    /// Keypoints of one frame; frames must come in order for tracking.
    pub fn process(&mut self, image: &RgbImage) -> Result<Keypoints, ModelError> {
        // A pushed frame's parts would be tracked from this frame's.
        debug_assert!(self.pending.is_none(), "flush pushed frames first");
        if image.width() == 0 || image.height() == 0 {
            // Nothing to look at (and nothing to sample crops from).
            self.reset();
            self.timings = StageTimings::default();
            return Ok(Keypoints::default());
        }
        let started = Instant::now();
        let (w, h) = (image.width() as f32, image.height() as f32);
        let (tracked, face_tracked) = if self.run_ahead {
            (
                [self.left.tracked_roi(w, h), self.right.tracked_roi(w, h)],
                self.face.as_ref().and_then(|f| f.tracker.tracked_roi(w, h)),
            )
        } else {
            ([None, None], None)
        };
        let Holistic {
            pose: pose_tracker,
            hand_models: models,
            left,
            right,
            ahead,
            face,
            threads,
            ..
        } = self;
        let (mut face_now, face_ahead) = match face.as_mut() {
            Some(Face {
                models,
                tracker,
                ahead,
                ..
            }) => (
                Some(FaceNow { models, tracker }),
                Some(FaceLater { models, ahead }),
            ),
            None => (None, None),
        };
        // The pool's other thread stays awake for the frame: woken from sleep
        // it came too late for the parts handed to it.
        let on_threads = |frame| threads.install(|| parallel::with_helper(frame));
        let (pose, pose_time, (left_hand, right_hand, face)) = on_threads(|| {
            let mut hands = Hands {
                models,
                image,
                left,
                right,
            };
            if tracked.iter().all(Option::is_none) && face_tracked.is_none() {
                let pose = pose_tracker.process(image)?;
                let pose_time = started.elapsed();
                let parts = hands.side_by_side(pose.as_deref(), &mut face_now)?;
                return Ok::<_, ModelError>((pose, pose_time, parts));
            }
            // The second thread would idle while the pose runs (but for the
            // parts of its models the pose's ops hand it); give it the hand
            // landmarks and the face mesh of the tracked rects meanwhile.
            let (located, (hands_ahead, face_ahead)) = rayon::join(
                || {
                    let pose = pose_tracker.process(image)?;
                    let pose_time = started.elapsed();
                    // The face beside the re-crops, for a thread done early.
                    let (rois, face_roi) = rayon::join(
                        || hands.locate(pose.as_deref()),
                        || locate_face(&mut face_now, image, pose.as_deref()),
                    );
                    Ok::<_, ModelError>((pose, pose_time, rois?, face_roi?))
                },
                || {
                    rayon::join(
                        || ahead.run(models, image, tracked),
                        || face_ahead.and_then(|f| f.ahead.run(f.models, image, face_tracked)),
                    )
                },
            );
            let (pose, pose_time, rois, face_roi) = located?;
            let (both_hands, face) = rayon::join(
                || hands.finish(rois, hands_ahead),
                || finish_face(&mut face_now, image, face_roi, face_ahead),
            );
            let (left_hand, right_hand) = both_hands?;
            Ok((pose, pose_time, (left_hand, right_hand, face?)))
        })?;
        let detection = self.pose.last_detection_time();
        self.timings = self.with_part_timings(StageTimings {
            pose_detection: detection,
            pose_landmarks: pose_time.saturating_sub(detection.unwrap_or_default()),
            total: started.elapsed(),
            ..StageTimings::default()
        });
        Ok(Keypoints {
            pose,
            face,
            left_hand,
            right_hand,
        })
    }

    /// Pipelined frames: the pose of `image` runs beside the hands and face
    /// of the frame pushed before it, whose keypoints this returns (`None`
    /// for the first frame). More frames a second than [`Holistic::process`]
    /// (the two threads rarely wait for each other), each frame's keypoints a
    /// frame later; the keypoints are the same, as the pose never reads the
    /// hands or face. [`Holistic::flush`] finishes the last frame. Frames
    /// must come in order; mixing in `process` needs a `flush` first.
    pub fn push(&mut self, image: RgbImage) -> Result<Option<Finished>, ModelError> {
        let earlier = self.pending.take();
        let (mut pose_step, mut parts, threads) = self.pipeline_halves();
        let (found, finished) = threads.install(|| {
            parallel::with_helper(|| {
                rayon::join(
                    || pose_step.find(image),
                    || earlier.map(|frame| parts.finish(frame)).transpose(),
                )
            })
        });
        self.pending = Some(found?);
        let finished = finished?;
        if let Some((finished, timings)) = finished {
            self.timings = self.pipelined_timings(timings);
            return Ok(Some(finished));
        }
        Ok(None)
    }

    /// The last frame pushed, finished (`None` when none is pending).
    pub fn flush(&mut self) -> Result<Option<Finished>, ModelError> {
        let Some(frame) = self.pending.take() else {
            return Ok(None);
        };
        let (_, mut parts, threads) = self.pipeline_halves();
        let (finished, timings) =
            threads.install(|| parallel::with_helper(|| parts.finish(frame)))?;
        self.timings = self.pipelined_timings(timings);
        Ok(Some(finished))
    }

    /// The pipelined path's two halves, the pose's and the parts', with the
    /// threads they run on.
    fn pipeline_halves(&mut self) -> (PoseStep<'_>, PartsTrackers<'_>, &rayon::ThreadPool) {
        let Holistic {
            pose,
            hand_models,
            left,
            right,
            face,
            threads,
            recrop_inputs,
            ..
        } = self;
        let (face, face_detector) = match face.as_mut() {
            Some(Face {
                models,
                tracker,
                detector_input,
                ..
            }) => (
                Some(FaceNow { models, tracker }),
                Some(FaceDetector {
                    models,
                    input: detector_input,
                }),
            ),
            None => (None, None),
        };
        let pose = PoseStep {
            tracker: pose,
            hand_models,
            recrop_inputs,
            face: face_detector,
        };
        let parts = PartsTrackers {
            models: hand_models,
            left,
            right,
            face,
        };
        (pose, parts, threads)
    }

    /// A pipelined frame's timings: the pose's from its first step, the
    /// hands' and face's from the trackers (none for a frame with no pixels).
    fn pipelined_timings(&self, pose: Option<StageTimings>) -> StageTimings {
        pose.map_or_else(StageTimings::default, |pose| self.with_part_timings(pose))
    }

    /// `pose`'s timings with the hands' and face's of the frame the trackers
    /// last finished.
    fn with_part_timings(&self, pose: StageTimings) -> StageTimings {
        let face_timings = self.face.as_ref().map(|f| f.tracker.last_timings());
        let (l, r) = (self.left.last_timings(), self.right.last_timings());
        StageTimings {
            hand_recrop: l.recrop.max(r.recrop),
            hands: l.landmarks.max(r.landmarks),
            hands_ahead: u8::from(l.ran_ahead) + u8::from(r.ran_ahead),
            face: face_timings.map(|t| t.total()),
            face_ahead: face_timings.is_some_and(|t| t.ran_ahead),
            ..pose
        }
    }

    /// The hand rects of the last frame, (left, right).
    pub fn last_hand_rois(&self) -> (HandRois, HandRois) {
        (self.left.last_rois(), self.right.last_rois())
    }

    /// Time each stage took on the last frame.
    pub fn last_timings(&self) -> &StageTimings {
        &self.timings
    }
}

/// Both hand trackers of a frame with what they share.
struct Hands<'a> {
    models: &'a HandModels,
    image: &'a RgbImage,
    left: &'a mut HandTracker,
    right: &'a mut HandTracker,
}

impl Hands<'_> {
    /// Both hands and the face when nothing ran ahead: the right hand on the
    /// pool's other thread while this one does the left hand, then the face.
    fn side_by_side(
        &mut self,
        pose: Option<&[Landmark]>,
        face: &mut Option<FaceNow>,
    ) -> Result<PartsFromPose, ModelError> {
        let Hands {
            models,
            image,
            left,
            right,
        } = self;
        let ((left_hand, face), right_hand) = rayon::join(
            || {
                (
                    left.process(models, image, pose),
                    face_of(face, image, pose),
                )
            },
            || right.process(models, image, pose),
        );
        Ok((left_hand?, right_hand?, face?))
    }

    /// Where each hand is, by the re-crop model on the rect from the pose
    /// (left, right): the right hand's on the pool's other thread when it is
    /// free (with nothing run ahead it would idle: the re-crop's ops are too
    /// small to cut into parts).
    fn locate(&mut self, pose: Option<&[Landmark]>) -> Result<[Option<Roi>; 2], ModelError> {
        let Hands {
            models,
            image,
            left,
            right,
        } = self;
        let (left_roi, right_roi) = rayon::join(
            || left.locate(models, image, pose),
            || right.locate(models, image, pose),
        );
        Ok([left_roi?, right_roi?])
    }

    /// Both hands' landmarks on the rects `rois` once the run ahead on the
    /// tracked rects is done: that run where its rect is the one found, the
    /// landmark model again otherwise (both hands at once when both need it).
    fn finish(
        &mut self,
        [left_roi, right_roi]: [Option<Roi>; 2],
        [left_ahead, right_ahead]: [Option<HandAhead>; 2],
    ) -> Result<BothHands, ModelError> {
        let Hands {
            models,
            image,
            left,
            right,
        } = self;
        let reruns = |roi: Option<Roi>, ahead: &Option<HandAhead>| {
            roi.is_some_and(|roi| ahead.as_ref().is_none_or(|a| !a.ran_on(&roi)))
        };
        let (left_hand, right_hand) =
            if reruns(left_roi, &left_ahead) && reruns(right_roi, &right_ahead) {
                rayon::join(
                    || left.finish(models, image, left_roi, left_ahead),
                    || right.finish(models, image, right_roi, right_ahead),
                )
            } else {
                (
                    left.finish(models, image, left_roi, left_ahead),
                    right.finish(models, image, right_roi, right_ahead),
                )
            };
        Ok((left_hand?, right_hand?))
    }
}

/// The pipelined path's first step: the pose and, from it, the hands'
/// re-crops and the face detection (which read no tracking state).
struct PoseStep<'a> {
    tracker: &'a mut PoseTracker,
    hand_models: &'a HandModels,
    recrop_inputs: &'a mut [Vec<f32>; 2],
    face: Option<FaceDetector<'a>>,
}

/// The face detector of the pipelined pose step, with the 1662 layout.
struct FaceDetector<'a> {
    models: &'a FaceModels,
    input: &'a mut Vec<f32>,
}

impl PoseStep<'_> {
    /// The pose of `image`, both hands' re-crops and (1662) the face
    /// detection (an empty frame resets the pose and finds nothing).
    fn find(&mut self, image: RgbImage) -> Result<PoseFound, ModelError> {
        let started = Instant::now();
        let empty = image.width() == 0 || image.height() == 0;
        let pose = if empty {
            self.tracker.reset();
            None
        } else {
            self.tracker.process(&image)?
        };
        let detection = self.tracker.last_detection_time();
        let pose_time = started.elapsed();
        let [left_input, right_input] = &mut *self.recrop_inputs;
        let models = self.hand_models;
        let pose_points = pose.as_deref();
        let ((left, face), right) = rayon::join(
            || {
                let left =
                    hands::recrop_from_pose(Side::Left, models, &image, pose_points, left_input);
                let face = self
                    .face
                    .as_mut()
                    .map(|f| face_path::detect_from_pose(f.models, &image, pose_points, f.input));
                (left, face)
            },
            || hands::recrop_from_pose(Side::Right, models, &image, pose_points, right_input),
        );
        Ok(PoseFound {
            hands: [left?, right?],
            face: face.transpose()?.flatten(),
            image,
            pose,
            empty,
            detection,
            pose_time,
            started,
        })
    }
}

/// The trackers of the pipelined path's second step: both hands and the face.
struct PartsTrackers<'a> {
    models: &'a HandModels,
    left: &'a mut HandTracker,
    right: &'a mut HandTracker,
    face: Option<FaceNow<'a>>,
}

impl PartsTrackers<'_> {
    /// The second step: the hands and face of a frame whose pose is found
    /// (an empty frame resets them and finds nothing), with the frame's
    /// pose timings (none for an empty frame).
    fn finish(&mut self, frame: PoseFound) -> Result<(Finished, Option<StageTimings>), ModelError> {
        let PoseFound {
            image,
            pose,
            hands: [left_recrop, right_recrop],
            face: face_detected,
            empty,
            detection,
            pose_time,
            started,
        } = frame;
        if empty {
            self.left.reset();
            self.right.reset();
            if let Some(f) = self.face.as_mut() {
                f.tracker.reset();
            }
            let keypoints = Keypoints::default();
            return Ok((Finished { image, keypoints }, None));
        }
        let rois = [
            self.left.locate_in(left_recrop),
            self.right.locate_in(right_recrop),
        ];
        let face_roi = self
            .face
            .as_mut()
            .and_then(|f| f.tracker.locate_in(face_detected));
        let (models, face) = (self.models, &mut self.face);
        let ((left_hand, face), right_hand) = rayon::join(
            || {
                (
                    self.left.finish(models, &image, rois[0], None),
                    finish_face(face, &image, face_roi, None),
                )
            },
            || self.right.finish(models, &image, rois[1], None),
        );
        let (left_hand, right_hand, face) = (left_hand?, right_hand?, face?);
        let timings = StageTimings {
            pose_detection: detection,
            pose_landmarks: pose_time.saturating_sub(detection.unwrap_or_default()),
            total: started.elapsed(),
            ..StageTimings::default()
        };
        let keypoints = Keypoints {
            pose,
            face,
            left_hand,
            right_hand,
        };
        Ok((Finished { image, keypoints }, Some(timings)))
    }
}

/// The face path of the 1662 layout: its models, its tracking, and the run
/// of the mesh made ahead of the pose.
struct Face {
    models: FaceModels,
    tracker: FaceTracker,
    ahead: FaceAheadRunner,
    /// The pipelined pose step's face detector input.
    detector_input: Vec<f32>,
}

/// The face path's part for the thread that follows the pose.
struct FaceNow<'a> {
    models: &'a FaceModels,
    tracker: &'a mut FaceTracker,
}

/// The face path's part for the thread that runs ahead of the pose.
struct FaceLater<'a> {
    models: &'a FaceModels,
    ahead: &'a mut FaceAheadRunner,
}

/// The face landmarks when the layout has a face.
fn face_of(
    face: &mut Option<FaceNow>,
    image: &RgbImage,
    pose: Option<&[Landmark]>,
) -> Result<Option<Vec<Landmark>>, ModelError> {
    match face {
        Some(f) => f.tracker.process(f.models, image, pose),
        None => Ok(None),
    }
}

/// The rect to run the face mesh in, when the layout has a face.
fn locate_face(
    face: &mut Option<FaceNow>,
    image: &RgbImage,
    pose: Option<&[Landmark]>,
) -> Result<Option<Roi>, ModelError> {
    match face {
        Some(f) => f.tracker.locate(f.models, image, pose),
        None => Ok(None),
    }
}

/// The face mesh in `roi`, from the run ahead when it was made there.
fn finish_face(
    face: &mut Option<FaceNow>,
    image: &RgbImage,
    roi: Option<Roi>,
    ahead: Option<FaceAhead>,
) -> Result<Option<Vec<Landmark>>, ModelError> {
    match face {
        Some(f) => f.tracker.finish(f.models, image, roi, ahead),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degenerate_frames_find_nothing_and_do_not_panic() {
        let mut holistic = Holistic::new(&HolisticOptions::default()).unwrap();
        for (w, h) in [(0, 0), (0, 10), (1, 1), (3, 700), (640, 2)] {
            let kp = holistic.process(&RgbImage::new(w, h)).unwrap();
            assert_eq!(kp.parts(), Default::default(), "{w}x{h}");
        }
    }

    /// A models folder holding only the pose and hand models (symlinks).
    fn folder_without_face_models() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let models = std::path::Path::new(crate::landmarks::models::DEFAULT_MODELS_DIR);
        for file in [
            "pose_detection.onnx",
            "pose_landmark_full.onnx",
            "hand_recrop.onnx",
            "hand_landmark_full.onnx",
        ] {
            std::os::unix::fs::symlink(models.join(file), dir.path().join(file)).unwrap();
        }
        dir
    }

    #[test]
    fn only_the_1662_layout_loads_and_runs_the_face_models() {
        let dir = folder_without_face_models();
        let mut holistic = Holistic::new(&HolisticOptions {
            models: ModelSource::Dir(dir.path().to_path_buf()),
            layout: Layout::PoseHands,
        })
        .unwrap();
        let frame = RgbImage::from_pixel(64, 48, image::Rgb([128, 128, 128]));
        let kp = holistic.process(&frame).unwrap();
        assert!(kp.face.is_none() && holistic.last_timings().face.is_none());
        let err = Holistic::new(&HolisticOptions {
            models: ModelSource::Dir(dir.path().to_path_buf()),
            layout: Layout::PoseFaceHands,
        })
        .err()
        .unwrap();
        assert!(
            err.to_string().contains("face_detection_short_range.onnx"),
            "{err}"
        );
    }

    #[test]
    fn running_the_hands_and_face_ahead_changes_no_keypoint() {
        let clip = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/media/butterfly_inference.gif"
        );
        let frames: Vec<RgbImage> =
            crate::capture::decode::MediaReader::open(std::path::Path::new(clip))
                .unwrap()
                .take(20)
                .map(Result::unwrap)
                .collect();
        let options = HolisticOptions {
            layout: Layout::PoseFaceHands,
            ..HolisticOptions::default()
        };
        let mut ahead = Holistic::new(&options).unwrap();
        let mut waiting = Holistic::new(&options).unwrap();
        waiting.run_ahead = false;
        let (mut hands_ahead, mut faces_ahead) = (0, 0);
        for (i, frame) in frames.iter().enumerate() {
            let expected = waiting.process(frame).unwrap();
            assert_eq!(ahead.process(frame).unwrap(), expected, "frame {i}");
            let waited = waiting.last_timings();
            assert!(waited.hands_ahead == 0 && !waited.face_ahead);
            hands_ahead += ahead.last_timings().hands_ahead;
            faces_ahead += usize::from(ahead.last_timings().face_ahead);
        }
        // The clip's hands and face are tracked from frame to frame for most
        // of it.
        assert!(hands_ahead >= 10, "{hands_ahead} hands run ahead");
        assert!(faces_ahead >= 10, "{faces_ahead} faces run ahead");
    }

    #[test]
    fn pipelined_frames_get_the_keypoints_of_frames_one_at_a_time() {
        let clip = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/media/butterfly_inference.gif"
        );
        let mut frames: Vec<RgbImage> =
            crate::capture::decode::MediaReader::open(std::path::Path::new(clip))
                .unwrap()
                .take(16)
                .map(Result::unwrap)
                .collect();
        // Frames with no pixels reset all tracking.
        for at in [4, 9, 14] {
            frames.insert(at, RgbImage::new(0, 0));
        }
        let options = HolisticOptions {
            layout: Layout::PoseFaceHands,
            ..HolisticOptions::default()
        };
        let mut one_at_a_time = Holistic::new(&options).unwrap();
        let expected: Vec<Keypoints> = frames
            .iter()
            .map(|f| one_at_a_time.process(f).unwrap())
            .collect();
        let mut pipelined = Holistic::new(&options).unwrap();
        let mut finished = Vec::new();
        for frame in &frames {
            finished.extend(pipelined.push(frame.clone()).unwrap());
            assert!(
                pipelined.pending.is_some(),
                "the newest frame waits for its hands"
            );
        }
        finished.extend(pipelined.flush().unwrap());
        assert!(pipelined.flush().unwrap().is_none());
        assert_eq!(finished.len(), frames.len());
        for (i, (got, frame)) in finished.iter().zip(&frames).enumerate() {
            assert_eq!(got.keypoints, expected[i], "frame {i}");
            assert_eq!(&got.image, frame, "frame {i} handed back");
        }
        let found = expected
            .iter()
            .filter(|k| k.left_hand.is_some() || k.right_hand.is_some());
        let found = found.count();
        assert!(found >= 8, "{found} frames with a hand");
        assert_eq!(expected[9], Keypoints::default());
        assert!(expected[10].pose.is_some() && expected[15].pose.is_some());
    }
}

//! Landmarks: MediaPipe Holistic's models on tract, and SignPose's keypoint layout.

pub mod conv_op;
pub mod depthwise;
pub mod draw;
pub mod extract;
pub mod face;
pub mod hands;
pub mod holistic;
pub mod inspect;
pub mod keypoints;
pub mod model;
pub mod parallel;
pub mod parity;
pub mod patches;
pub mod pointwise;
pub mod pose;
pub mod prelu;
pub mod roi;
pub mod smoothing;
pub mod ssd;
pub mod topology;
pub mod warp;

pub use holistic::{Holistic, HolisticOptions, StageTimings};
pub use keypoints::{Keypoints, Landmark, Layout, Parts};
pub use model::ModelSource;

//! Landmarks: MediaPipe Holistic's graph (pose, hands, face, their ROIs,
//! detector decoding, crops and smoothing) over its models on [`crate::nn`],
//! and SignPose's keypoint layout.

pub mod ahead;
pub mod face;
pub mod hands;
pub mod holistic;
pub mod keypoints;
pub mod models;
pub mod pose;
pub mod roi;
pub mod smoothing;
pub mod ssd;
pub mod topology;
pub mod warp;

pub use holistic::{Holistic, HolisticOptions, StageTimings};
pub use keypoints::{Keypoints, Landmark, Layout, Parts};
pub use models::ModelSource;

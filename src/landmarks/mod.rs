//! Landmarks: MediaPipe Holistic's models on tract, and SignPose's keypoint layout.

pub mod keypoints;

pub use keypoints::{Keypoints, Landmark, Layout, Parts};
pub mod inspect;
pub mod model;
pub mod pose;
pub mod roi;
pub mod ssd;
pub mod warp;

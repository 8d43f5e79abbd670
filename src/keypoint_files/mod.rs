//! Keypoint files: the commands that read and write SignPose-layout .npy
//! files (`signtop landmarks` to extract them, `inspect`, `compare` against a
//! reference) and the drawing of keypoints on frames they and the preview use.

pub mod draw;
pub mod extract;
pub mod inspect;
pub mod parity;

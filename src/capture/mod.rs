//! Capture: frames from a camera (V4L2) or a replay (image, GIF, folder, video).

pub mod convert;
pub mod decode;
pub mod frame;

pub use frame::Frame;

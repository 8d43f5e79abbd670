//! Classify: the 30-frame window, the sign model on tract, smoothing and transcript.

pub mod window;

pub use window::{DEFAULT_WINDOW_LEN, Window, WindowError};

//! Classify: the time-based window, the features the model reads, the sign model on tract, smoothing and transcript.

pub mod features;
pub mod model;
pub mod preprocess;
pub mod smoothing;
pub mod transcript;
pub mod window;

pub use model::{ClassifyError, DEFAULT_SIGN_MODEL, Sidecar, SignModel};
pub use preprocess::Preprocessing;
pub use smoothing::{Decision, Smoother, SmoothingConfig};
pub use transcript::{DEFAULT_TRANSCRIPT_LEN, Entry, Transcript};
pub use window::{DEFAULT_WINDOW_LEN, Window, WindowError};

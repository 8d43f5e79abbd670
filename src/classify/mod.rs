//! Classify: the 30-frame window, the sign model on tract, smoothing and transcript.

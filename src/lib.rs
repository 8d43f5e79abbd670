//! signtop: a terminal live monitor that recognises sign language in real time.
//!
//! Data flows one way: `capture` (frame sources) -> `landmarks` (MediaPipe
//! Holistic's graph) -> `classify` (the time-based window, the sign model,
//! smoothing) -> `tui`. Both `landmarks` and `classify` run their models on
//! `nn`, the inference runtime (tract and signtop's own ops);
//! `keypoint_files` holds the commands that read and write keypoint files.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod bench;
pub mod capture;
pub mod classify;
pub mod cli;
pub mod config;
pub mod keypoint_files;
pub mod landmarks;
pub mod logging;
pub mod monitor;
pub mod nn;
pub mod pipeline;
pub mod practice;
pub mod record;
pub mod report;
pub mod train;
pub mod tui;

//! signtop: a terminal live monitor that recognises sign language in real time.
//!
//! Data flows one way: `capture` (frame sources) -> `landmarks` (MediaPipe
//! Holistic on tract) -> `classify` (30-frame window, LSTM, smoothing) -> `tui`.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod bench;
pub mod capture;
pub mod classify;
pub mod cli;
pub mod config;
pub mod landmarks;
pub mod logging;
pub mod monitor;
pub mod pipeline;
pub mod practice;
pub mod record;
pub mod report;
pub mod train;
pub mod tui;

//! The command line: clap definitions and dispatch to each module's command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::capture::{devices, probe};
use crate::keypoint_files::{extract, inspect, parity};

/// signtop: recognise sign language live in the terminal.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// Log file (default: $XDG_STATE_HOME/signtop/signtop.log).
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,

    /// The live monitor's options (used when no subcommand is given).
    #[command(flatten)]
    pub monitor: crate::monitor::MonitorArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Holistic landmarks of an image, GIF, folder of images or video: keypoints
    /// to a float32 .npy (frames, features), optionally each frame drawn.
    Landmarks(extract::ExtractArgs),
    /// Summarise a keypoint .npy file: shape, layout, how often each part was found.
    Inspect(inspect::InspectArgs),
    /// Compare keypoints with a reference (e.g. MediaPipe's): per-part detection
    /// agreement and mean |dx|, |dy|; fails when a parity target is missed.
    Compare(parity::CompareArgs),
    /// List the cameras (V4L2 devices): pixel formats, frame sizes and frame rates.
    Devices(devices::DevicesArgs),
    /// Train a sign classifier (LSTM) on keypoint sequences and export it to ONNX.
    Train(crate::train::TrainArgs),
    /// Evaluate a sign model on labelled sequences: accuracy, precision/recall,
    /// confusion matrix, and optional PNG plots.
    Eval(crate::train::eval::EvalArgs),
    /// Record takes of signs for training: DIR/<sign>/take-NNN.npy (+ .json),
    /// each saved the moment it ends.
    Record(crate::record::RecordArgs),
    /// Practise signs: a random target, a CORRECT flash, score and streak.
    Practice(crate::practice::PracticeArgs),
    /// Exercise the camera source against the vivid test driver (used by the VM test).
    #[command(hide = true)]
    VmProbe(probe::ProbeArgs),
    /// Time the landmark models (`--models`) on real frames: p50/p95/p99 and FPS.
    Bench(crate::bench::BenchArgs),
    /// Print the built-in config file: every setting with its default (to
    /// start ~/.config/signtop/signtop.toml from).
    Config,
}

/// Parses the command line, runs it, and turns an error into a message and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("signtop: error: {}", crate::report::chain(err.as_ref()));
            ExitCode::FAILURE
        }
    }
}

impl Command {
    /// Whether the command only reads and prints (no file it writes, no
    /// state to save): it may simply end when its output's reader goes.
    fn only_reports(&self) -> bool {
        matches!(
            self,
            Command::Inspect(_)
                | Command::Compare(_)
                | Command::Devices(_)
                | Command::Eval(_)
                | Command::Bench(_)
                | Command::Config
        )
    }
}

/// Lets a write to a closed pipe end the process, as it ends other Unix
/// tools (`signtop bench ... | head`), instead of failing the write: Rust
/// ignores SIGPIPE, and `println!` panics on the failed write.
fn end_quietly_when_the_reader_goes() {
    // SAFETY: restores the signal's default action; no handler is involved.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let log_path = cli
        .log_file
        .clone()
        .unwrap_or_else(crate::logging::default_log_path);
    let _log_guard = crate::logging::init(&log_path)
        .with_context(|| format!("setting up logging to {}", log_path.display()))?;
    tracing::info!(?cli.command, "start");
    if cli.command.as_ref().is_some_and(Command::only_reports) {
        end_quietly_when_the_reader_goes();
    }
    match cli.command {
        Some(Command::Landmarks(args)) => extract::run(&args),
        Some(Command::Inspect(args)) => inspect::run(&args),
        Some(Command::Compare(args)) => parity::run(&args),
        Some(Command::Devices(args)) => devices::run(&args),
        Some(Command::Train(args)) => crate::train::run_train(&args),
        Some(Command::Eval(args)) => crate::train::eval::run(&args),
        Some(Command::Record(args)) => crate::record::run(&args),
        Some(Command::Practice(args)) => crate::practice::run(&args),
        Some(Command::VmProbe(args)) => probe::run(&args),
        Some(Command::Bench(args)) => crate::bench::run(&args),
        Some(Command::Config) => {
            print!("{}", crate::config::DEFAULT_CONFIG);
            Ok(())
        }
        None => crate::monitor::run(&cli.monitor),
    }
}

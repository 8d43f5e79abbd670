//! `signtop bench`: the landmark pipeline's per-stage latency (p50/p95/p99,
//! FPS) on real frames, and the per-model microbenchmark (`--models`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use image::RgbImage;
use image::imageops::FilterType;

use crate::capture::decode::MediaReader;
use crate::keypoint_files::inspect::PartRates;
use crate::landmarks::holistic::{Holistic, HolisticOptions, StageTimings};
use crate::landmarks::keypoints::{Keypoints, Layout};
use crate::landmarks::models::{self, ModelSource};
use crate::nn::Model;
use crate::nn::model::OpTime;
use crate::nn::parallel;
use crate::nn::simd::{NO_AVX512_VAR, Simd};
use crate::pipeline::metrics::Latency;

pub mod paired;

/// Options of `signtop bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Frames to run on: image, GIF, folder of images or video.
    #[arg(long, value_name = "PATH")]
    pub input: PathBuf,
    /// Time each ONNX model on the frames instead of the whole pipeline.
    #[arg(long)]
    pub models: bool,
    /// With `--models`: where each model's time goes, op by op (the time per
    /// kind of op, and the slowest ops).
    #[arg(long, requires = "models")]
    pub ops: bool,
    /// With `--ops`: list every op, slowest first, not only the 12 slowest.
    #[arg(long, requires = "ops")]
    pub all_ops: bool,
    /// Number of frames to time (the input is replayed from its start, with
    /// tracking reset, when shorter).
    #[arg(long, default_value_t = 100)]
    pub frames: usize,
    /// Keypoint layout: 258 (pose + hands) or 1662 (with the face path).
    #[arg(long, default_value = "258", value_name = "258|1662")]
    pub layout: Layout,
    /// Models directory [default: the models built into signtop].
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Pipeline the frames: each frame's pose beside the previous frame's
    /// hands and face (`signtop landmarks` does). Adds the `interval`
    /// row (time from one frame's keypoints to the next's, the throughput);
    /// `landmarks` is then each frame's latency, from its pose's start.
    #[arg(long, conflicts_with = "models")]
    pub pipelined: bool,
    /// One frame at a time against pipelined, side by side: N pairs of
    /// passes over the input's frames, alternating (order swapped each pair),
    /// and the ratio of their times per frame (median, range).
    #[arg(long, value_name = "N", conflicts_with_all = ["models", "pipelined"])]
    pub paired: Option<usize>,
}

/// Latencies of one stage, named for the table.
pub struct StageStats {
    name: String,
    latency: Latency,
}

impl StageStats {
    /// An empty record for `name`.
    pub fn new(name: &str) -> StageStats {
        StageStats {
            name: name.to_string(),
            latency: Latency::new(),
        }
    }

    /// Records one duration (clamped into the histogram's range).
    pub fn record(&mut self, d: Duration) {
        self.latency.record(d);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.latency.count()
    }

    /// The `q` quantile (0..=1) in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.latency.quantile_ms(q)
    }

    /// Mean in milliseconds.
    pub fn mean_ms(&self) -> f64 {
        self.latency.mean_ms()
    }

    /// One table row: name, p50, p95, p99, mean (ms) and the throughput it allows.
    pub fn row(&self) -> String {
        let mean = self.mean_ms();
        let fps = if mean > 0.0 { 1000.0 / mean } else { 0.0 };
        format!(
            "{:<32} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.1}",
            self.name,
            self.quantile_ms(0.5),
            self.quantile_ms(0.95),
            self.quantile_ms(0.99),
            mean,
            fps
        )
    }
}

/// The table header matching [`StageStats::row`].
pub fn header() -> String {
    format!(
        "{:<32} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "stage (ms)", "p50", "p95", "p99", "mean", "fps"
    )
}

/// Runs `signtop bench`.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let dir = ModelSource::dir_or_built_in(args.models_dir.clone());
    if args.models {
        // On the landmark threads, as in the pipeline: each model's big
        // convolutions shared by all cores.
        let threads = parallel::landmark_threads().context("starting the landmark threads")?;
        return threads.install(|| run_models(args, &dir));
    }
    if let Some(pairs) = args.paired {
        let frames = decoded_frames(&args.input)?;
        print!(
            "{}",
            paired::bench_paired(&frames, &dir, args.layout, pairs.max(1))?
        );
        return Ok(());
    }
    let report = bench_pipeline(
        &args.input,
        &dir,
        args.layout,
        args.frames.max(1),
        args.pipelined,
    )?;
    print!("{report}");
    Ok(())
}

/// Times each model on its own (`--models`).
fn run_models(args: &BenchArgs, dir: &ModelSource) -> anyhow::Result<()> {
    let frames = decoded_frames(&args.input)?;
    println!("{} {:>8} {:>8}", header(), "MMAC", "GFLOP/s");
    for (file, side) in MODELS {
        let s = *side as usize;
        let model = models::load(dir, file, &[1, s, s, 3])?;
        let inputs: Vec<Vec<f32>> = frames.iter().map(|f| to_input(f, *side)).collect();
        let stats = time_model(&model, file, &inputs, args.frames.max(1))?;
        let macs = models::multiply_adds(dir, file, &[1, s, s, 3])?;
        println!(
            "{} {:>8.1} {:>8.1}",
            stats.row(),
            macs as f64 / 1e6,
            gflops(macs, stats.quantile_ms(0.5))
        );
        if args.ops {
            let listed = if args.all_ops {
                usize::MAX
            } else {
                SLOWEST_LISTED
            };
            print!(
                "{}",
                op_profile(&model, &inputs, args.frames.max(1), listed)?
            );
        }
    }
    println!("{}", Machine::here());
    Ok(())
}

/// GFLOP/s (a multiply-add counted as two operations) of `macs` in `ms`.
fn gflops(macs: u64, ms: f64) -> f64 {
    if ms > 0.0 {
        2.0 * macs as f64 / (ms * 1e6)
    } else {
        0.0
    }
}

/// What the figures are measured against: the SIMD level signtop's ops use
/// and the cores' peak at that level, measured.
#[derive(Debug, Clone, Copy)]
pub struct Machine {
    simd: Simd,
    cores: usize,
    peak_gflops: f64,
    ghz: Option<f64>,
}

impl Machine {
    /// This process's SIMD level and cores, and their peak measured by a
    /// loop of fused multiply-adds on every core at once for 0.3 s.
    pub fn here() -> Machine {
        let simd = Simd::chosen();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let peak_gflops = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..cores)
                .map(|_| scope.spawn(move || simd.measured_peak_gflops(300)))
                .collect();
            threads.into_iter().filter_map(|t| t.join().ok()).sum()
        });
        let ghz = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| cpu_mhz(&info))
            .map(|mhz| mhz / 1000.0);
        Machine {
            simd,
            cores,
            peak_gflops,
            ghz,
        }
    }

    /// `gflops` as a percentage of the measured peak.
    pub fn share_of_peak(&self, gflops: f64) -> Option<f64> {
        (self.peak_gflops > 0.0).then(|| 100.0 * gflops / self.peak_gflops)
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "signtop's ops: {} ({NO_AVX512_VAR}=1 switches AVX-512 off); peak {:.0} GFLOP/s measured (fused multiply-adds on {} core(s) at once",
            self.simd.name(),
            self.peak_gflops,
            self.cores
        )?;
        if let Some(ghz) = self.ghz {
            let nominal = ghz * self.cores as f64 * self.simd.flops_per_cycle();
            write!(
                f,
                "; {nominal:.0} at the {ghz:.2} GHz the OS reports and two FMA units a core"
            )?;
        }
        write!(f, ")")
    }
}

/// The first "cpu MHz" of /proc/cpuinfo's text.
fn cpu_mhz(cpuinfo: &str) -> Option<f64> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("cpu MHz"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse().ok())
}

/// What a whole-pipeline run measured.
pub struct PipelineReport {
    input: PathBuf,
    layout: Layout,
    width: u32,
    height: u32,
    threads: usize,
    stages: Vec<StageStats>,
    rates: PartRates,
    hands: HandsRunAhead,
    peak_rss_mib: Option<f64>,
    huge_page_mib: Option<f64>,
    page_faults_per_frame: Option<f64>,
    tracked_frame_macs: u64,
    machine: Machine,
    /// Each frame's pose ran beside the previous frame's hands and face.
    pipelined: bool,
    /// The decoder's one-off start (an ffmpeg child's launch and probe):
    /// how much longer than the clip's median frame the first took.
    decoder_start: Option<Duration>,
}

/// How many found hands took their landmarks from the run made ahead on the
/// tracked rect, overlapping the pose (the rest waited for it).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct HandsRunAhead {
    pub found: usize,
    pub ahead: usize,
}

impl PipelineReport {
    /// The row a frame's share of the run is read from: the landmarks, or
    /// pipelined, the interval between frames.
    fn per_frame_stage(&self) -> &'static str {
        if self.pipelined {
            FRAME_INTERVAL
        } else {
            "landmarks"
        }
    }

    /// A tracked frame's multiply-adds and the rate they would run at in
    /// the p50 of a frame's time (landmarks, or pipelined, interval).
    fn work_line(&self) -> String {
        let parts = match self.layout {
            Layout::PoseHands => "pose landmarks, both hands' re-crop and landmarks",
            Layout::PoseFaceHands => {
                "pose landmarks, both hands' re-crop and landmarks, face detection and landmarks"
            }
        };
        let macs = self.tracked_frame_macs;
        let mut line = format!(
            "work: {:.0} M multiply-adds a tracked frame ({parts})",
            macs as f64 / 1e6
        );
        let per_frame = self.per_frame_stage();
        if let Some(stage) = self.stage(per_frame) {
            let rate = gflops(macs, stage.quantile_ms(0.5));
            line += &format!(", {rate:.1} GFLOP/s at the {per_frame} p50");
            if let Some(share) = self.machine.share_of_peak(rate) {
                line += &format!(", {share:.1}% of peak");
            }
        }
        line
    }

    /// The stage named `name`, if it ran at least once.
    pub fn stage(&self, name: &str) -> Option<&StageStats> {
        self.stages.iter().find(|s| s.name == name && s.count() > 0)
    }

    /// Frames timed.
    pub fn frames(&self) -> usize {
        self.rates.frames
    }

    /// Page faults per timed frame (memory the allocator had to ask the
    /// kernel for again), when the platform reports them.
    pub fn page_faults_per_frame(&self) -> Option<f64> {
        self.page_faults_per_frame
    }

    /// Hands found, and how many of them were run ahead.
    pub fn hands_run_ahead(&self) -> HandsRunAhead {
        self.hands
    }
}

impl std::fmt::Display for PipelineReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "input {} ({}x{}), layout {}, {} frames, {} core(s)",
            self.input.display(),
            self.width,
            self.height,
            self.layout,
            self.rates.frames,
            self.threads
        )?;
        writeln!(f, "{} {:>6}", header(), "runs")?;
        for stage in self.stages.iter().filter(|s| s.count() > 0) {
            writeln!(f, "{} {:>6}", stage.row(), stage.count())?;
        }
        if let Some(start) = self.decoder_start {
            writeln!(
                f,
                "decoder start: {:.1} ms before the first frame, once (not in `decode`: \
                 the first frame counts at most the clip's median decode)",
                start.as_secs_f64() * 1e3
            )?;
        }
        writeln!(f, "found: {}", self.rates.summary(self.layout))?;
        let HandsRunAhead { found, ahead } = self.hands;
        if self.pipelined {
            writeln!(
                f,
                "pipelined: each frame's pose beside the previous frame's hands{}; \
                 landmarks = a frame's latency, interval = from one frame's keypoints to the next's (the throughput)",
                if self.layout.has_face() {
                    " and face"
                } else {
                    ""
                }
            )?;
        } else {
            writeln!(
                f,
                "hands run ahead of the pose: {ahead} of {found} found ({:.0}%)",
                100.0 * ahead as f64 / found.max(1) as f64
            )?;
        }
        if let Some(mib) = self.peak_rss_mib {
            writeln!(f, "peak memory: {mib:.0} MiB (resident, whole process)")?;
        }
        if let Some(mib) = self.huge_page_mib {
            writeln!(
                f,
                "huge pages: {mib:.0} MiB (transparent, resident at the end)"
            )?;
        }
        if let Some(faults) = self.page_faults_per_frame {
            writeln!(f, "page faults: {faults:.0} per frame (whole process)")?;
        }
        writeln!(f, "{}", self.work_line())?;
        writeln!(f, "{}", self.machine)
    }
}

/// The whole process's resource usage so far.
fn resource_usage() -> Option<libc::rusage> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is valid.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    // SAFETY: when getrusage returns 0 the struct is initialised.
    (rc == 0).then(|| unsafe { usage.assume_init() })
}

/// This process's memory in transparent huge pages, in MiB (the kernel's
/// `AnonHugePages`), where the kernel says.
fn huge_page_mib() -> Option<f64> {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let kib: f64 = rollup
        .lines()
        .find_map(|l| l.strip_prefix("AnonHugePages:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// Peak resident set size in MiB (Linux reports ru_maxrss in KiB).
fn max_rss_mib(usage: &libc::rusage) -> f64 {
    usage.ru_maxrss as f64 / 1024.0
}

/// Stage names in pipeline order; `landmarks` is Holistic's whole frame and
/// `total` adds the decode.
const PIPELINE_STAGES: &[&str] = &[
    "decode",
    "pose detect",
    "pose landmarks",
    "hand recrop",
    "hands",
    "face",
    "landmarks",
    "total",
];

/// The pipelined bench's row: from one frame's keypoints to the next's.
const FRAME_INTERVAL: &str = "interval";

/// Runs Holistic over `frames` frames of `input` in order, timing every stage
/// (pipelined: each frame's pose beside the previous frame's hands and face).
/// A shorter input is replayed from its start with tracking reset, as a fresh
/// run over the same clip would see it; one untimed warm-up frame comes first.
pub fn bench_pipeline(
    input: &Path,
    models: &ModelSource,
    layout: Layout,
    frames: usize,
    pipelined: bool,
) -> anyhow::Result<PipelineReport> {
    let mut decoded = decode_timed(input)?;
    let decoder_start = set_apart_decoder_start(&mut decoded);
    let (width, height) = decoded[0].0.dimensions();
    let mut holistic = Holistic::new(&HolisticOptions {
        models: models.clone(),
        layout,
    })
    .context("loading the landmark models")?;
    holistic.process(&decoded[0].0)?;
    let mut tally = Tally::new(pipelined);
    let faults_before = resource_usage().map(|u| u.ru_minflt + u.ru_majflt);
    // The decode time of the frame the pipelined path holds.
    let mut pending_decode = None;
    for i in 0..frames {
        let (image, decode) = &decoded[i % decoded.len()];
        if i % decoded.len() == 0 {
            // A fresh run over the clip: the last one's frame finished first.
            if let Some(finished) = holistic.flush()? {
                tally.add(&finished.keypoints, &holistic, pending_decode.take());
            }
            holistic.reset();
        }
        if !pipelined {
            let keypoints = holistic.process(image)?;
            tally.add(&keypoints, &holistic, Some(*decode));
        } else if let Some(finished) = holistic.push(image.clone())? {
            tally.add(
                &finished.keypoints,
                &holistic,
                pending_decode.replace(*decode),
            );
        } else {
            pending_decode = Some(*decode);
        }
    }
    if let Some(finished) = holistic.flush()? {
        tally.add(&finished.keypoints, &holistic, pending_decode.take());
    }
    let Tally {
        stages,
        rates,
        hands,
        ..
    } = tally;
    Ok(PipelineReport {
        input: input.to_path_buf(),
        layout,
        width,
        height,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        stages,
        rates,
        hands,
        peak_rss_mib: resource_usage().map(|u| max_rss_mib(&u)),
        huge_page_mib: huge_page_mib(),
        page_faults_per_frame: faults_before
            .zip(resource_usage())
            .map(|(before, now)| (now.ru_minflt + now.ru_majflt - before) as f64 / frames as f64),
        tracked_frame_macs: tracked_frame_macs(models, layout)?,
        machine: Machine::here(),
        pipelined,
        decoder_start,
    })
}

/// The timed frames' stages and parts found, added up as they finish.
struct Tally {
    stages: Vec<StageStats>,
    rates: PartRates,
    hands: HandsRunAhead,
    /// Pipelined: when the last frame finished (at first, when timing began).
    last_finished: Option<Instant>,
}

impl Tally {
    fn new(pipelined: bool) -> Tally {
        let mut stages: Vec<StageStats> =
            PIPELINE_STAGES.iter().map(|n| StageStats::new(n)).collect();
        if pipelined {
            stages.push(StageStats::new(FRAME_INTERVAL));
        }
        Tally {
            stages,
            rates: PartRates::default(),
            hands: HandsRunAhead::default(),
            last_finished: pipelined.then(Instant::now),
        }
    }

    /// A finished frame: its keypoints, its timings (`holistic`'s last) and
    /// its decode time.
    fn add(&mut self, keypoints: &Keypoints, holistic: &Holistic, decode: Option<Duration>) {
        self.rates.add(keypoints.parts());
        let timings = holistic.last_timings();
        self.hands.found += usize::from(keypoints.left_hand.is_some())
            + usize::from(keypoints.right_hand.is_some());
        self.hands.ahead += usize::from(timings.hands_ahead);
        record_frame(&mut self.stages, decode.unwrap_or_default(), timings);
        let now = Instant::now();
        if let Some(last) = self.last_finished.replace(now)
            && let Some(stage) = self.stages.iter_mut().find(|s| s.name == FRAME_INTERVAL)
        {
            stage.record(now - last);
        }
    }
}

/// Multiply-adds of a frame whose pose was tracked and both hands (and the
/// face, for 1662) were found: the models such a frame runs, once each but
/// the hand models twice.
fn tracked_frame_macs(models: &ModelSource, layout: Layout) -> anyhow::Result<u64> {
    let mut runs = vec![
        ("pose_landmark_full.onnx", 1),
        ("hand_recrop.onnx", 2),
        ("hand_landmark_full.onnx", 2),
    ];
    if layout == Layout::PoseFaceHands {
        runs.extend([
            ("face_detection_short_range.onnx", 1),
            ("face_landmark.onnx", 1),
        ]);
    }
    let mut total = 0;
    for (file, times) in runs {
        let side = MODELS
            .iter()
            .find(|(name, _)| *name == file)
            .map_or(0, |(_, side)| *side as usize);
        total += times * models::multiply_adds(models, file, &[1, side, side, 3])?;
    }
    Ok(total)
}

/// Adds one frame's timings to the stage records.
fn record_frame(stages: &mut [StageStats], decode: Duration, timings: &StageTimings) {
    let mut add = |name: &str, d: Duration| {
        if let Some(stage) = stages.iter_mut().find(|s| s.name == name) {
            stage.record(d);
        }
    };
    add("decode", decode);
    for (name, d) in timings.stages() {
        add(name, d);
    }
    add("landmarks", timings.total);
    add("total", decode + timings.total);
}

/// Every frame of `path` (at least one), decoded.
fn decoded_frames(path: &Path) -> anyhow::Result<Vec<RgbImage>> {
    Ok(decode_timed(path)?
        .into_iter()
        .map(|(frame, _)| frame)
        .collect())
}

/// Decodes every frame of `path` (at least one), with the time each took.
fn decode_timed(path: &Path) -> anyhow::Result<Vec<(RgbImage, Duration)>> {
    let mut reader =
        MediaReader::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut frames = Vec::new();
    loop {
        let start = Instant::now();
        match reader.next() {
            None => break,
            Some(frame) => {
                let frame = frame.with_context(|| format!("decoding {}", path.display()))?;
                frames.push((frame, start.elapsed()));
            }
        }
    }
    if frames.is_empty() {
        anyhow::bail!("{}: no frames", path.display());
    }
    Ok(frames)
}

/// Takes the decoder's one-off start out of the first frame's decode time
/// and returns it: the first frame then counts at most the clip's median
/// decode.
/// Each replay of a short clip reuses the first pass's times, so left in,
/// an ffmpeg launch (0.1-0.9 s here) would count once per replay as a
/// frame's decode. `None` for a single frame, which has no median to go by.
fn set_apart_decoder_start<T>(decoded: &mut [(T, Duration)]) -> Option<Duration> {
    let mut rest: Vec<Duration> = decoded.get(1..)?.iter().map(|(_, d)| *d).collect();
    if rest.is_empty() {
        return None;
    }
    rest.sort_unstable();
    let median = rest[rest.len() / 2];
    let first = &mut decoded[0].1;
    let start = first.saturating_sub(median);
    *first = (*first).min(median);
    Some(start)
}

/// The models and their square input sides.
const MODELS: &[(&str, u32)] = &[
    ("pose_detection.onnx", 224),
    ("pose_landmark_full.onnx", 256),
    ("hand_recrop.onnx", 256),
    ("hand_landmark_full.onnx", 224),
    ("face_detection_short_range.onnx", 128),
    ("face_landmark.onnx", 192),
];

/// Resizes `image` to `side`x`side` and scales it to [0, 1] NHWC floats.
fn to_input(image: &RgbImage, side: u32) -> Vec<f32> {
    let small = image::imageops::resize(image, side, side, FilterType::Triangle);
    small
        .as_raw()
        .iter()
        .map(|&v| f32::from(v) / 255.0)
        .collect()
}

/// Ops `bench --ops` lists, slowest first, without `--all-ops`.
const SLOWEST_LISTED: usize = 12;

/// Where one model's time goes: each kind of op's share of the summed op
/// times over `n` runs on `inputs` (cycled), then the `listed` slowest ops,
/// each by its mean.
fn op_profile(
    model: &Model,
    inputs: &[Vec<f32>],
    n: usize,
    listed: usize,
) -> anyhow::Result<String> {
    let mut nodes: Vec<OpTime> = Vec::new();
    for input in inputs.iter().cycle().take(n + 1) {
        let run = parallel::with_helper(|| model.profile(input))?;
        if nodes.is_empty() {
            // The first run warms up; its times are dropped.
            nodes = run
                .into_iter()
                .map(|o| OpTime {
                    time: Duration::ZERO,
                    ..o
                })
                .collect();
            continue;
        }
        for (sum, op) in nodes.iter_mut().zip(run) {
            sum.time += op.time;
        }
    }
    Ok(format_op_profile(&nodes, n, listed))
}

/// [`op_profile`]'s table from the ops' summed times over `runs` runs, the
/// `listed` slowest ops last.
fn format_op_profile(nodes: &[OpTime], runs: usize, listed: usize) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / runs.max(1) as f64;
    let total: Duration = nodes.iter().map(|o| o.time).sum();
    // Per kind: summed time, ops, multiply-adds a run.
    let mut kinds: Vec<(&str, Duration, usize, u64)> = Vec::new();
    for op in nodes {
        match kinds.iter_mut().find(|k| k.0 == op.kind) {
            Some((_, time, count, macs)) => {
                *time += op.time;
                *count += 1;
                *macs += op.macs;
            }
            None => kinds.push((&op.kind, op.time, 1, op.macs)),
        }
    }
    kinds.sort_by_key(|k| std::cmp::Reverse(k.1));
    let mut out = format!(
        "  ops {:.2} ms a run, by kind (GFLOP/s where an op counts its multiply-adds):\n",
        ms(total)
    );
    for (kind, time, count, macs) in kinds.iter().filter(|k| !k.1.is_zero()) {
        let share = 100.0 * time.as_secs_f64() / total.as_secs_f64().max(1e-12);
        out += &format!(
            "    {kind:<28} {count:>4} ops {:>7.3} ms {share:>5.1}%{}\n",
            ms(*time),
            rate(*macs, ms(*time)),
        );
    }
    let mut slowest: Vec<&OpTime> = nodes.iter().collect();
    slowest.sort_by_key(|o| std::cmp::Reverse(o.time));
    out += "  slowest ops:\n";
    for op in slowest.iter().take(listed) {
        out += &format!(
            "    {:>7.3} ms  {:<24} {:<18} {:<28}{}\n",
            ms(op.time),
            op.kind,
            op.shape,
            op.node,
            rate(op.macs, ms(op.time)),
        );
    }
    out
}

/// " 123.4 GFLOP/s" for `macs` multiply-adds in `ms`, or nothing without any.
fn rate(macs: u64, ms: f64) -> String {
    if macs == 0 || ms <= 0.0 {
        return String::new();
    }
    format!(" {:>7.1} GFLOP/s", gflops(macs, ms))
}

/// Times `n` runs of `model` (named `file`), cycling over `inputs` (one
/// warm-up run first).
fn time_model(
    model: &Model,
    file: &str,
    inputs: &[Vec<f32>],
    n: usize,
) -> anyhow::Result<StageStats> {
    let mut stats = StageStats::new(file);
    if let Some(first) = inputs.first() {
        model.run(first)?;
    }
    for input in inputs.iter().cycle().take(n) {
        let start = Instant::now();
        // The pool's other thread awake for the run, as in a frame.
        parallel::with_helper(|| model.run(input))?;
        stats.record(start.elapsed());
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decoders_start_is_set_apart_from_the_first_frames_decode() {
        let ms = Duration::from_millis;
        let mut decoded = [((), ms(100)), ((), ms(3)), ((), ms(1)), ((), ms(2))];
        assert_eq!(set_apart_decoder_start(&mut decoded), Some(ms(98)));
        let times: Vec<Duration> = decoded.iter().map(|(_, d)| *d).collect();
        assert_eq!(times, [ms(2), ms(3), ms(1), ms(2)]);
        // A first frame quicker than the median keeps its own time.
        let mut quick = [((), ms(1)), ((), ms(5))];
        assert_eq!(set_apart_decoder_start(&mut quick), Some(ms(0)));
        assert_eq!(quick[0].1, ms(1));
        let mut single = [((), ms(100))];
        assert_eq!(set_apart_decoder_start(&mut single), None);
        assert_eq!(single[0].1, ms(100));
    }

    #[test]
    fn the_op_profile_sums_each_kind_and_lists_the_slowest_first() {
        let op = |kind: &str, node: &str, ms: u64| OpTime {
            kind: kind.into(),
            node: node.into(),
            shape: "1,8,8,16".into(),
            time: Duration::from_millis(ms),
            // 1 M multiply-adds a millisecond per run (over two runs): 2 GFLOP/s.
            macs: if kind == "Conv" { ms * 500_000 } else { 0 },
        };
        let nodes = [op("Conv", "a", 2), op("Pool", "b", 8), op("Conv", "c", 10)];
        // Summed over two runs: per run, Conv 6 ms of 10, Pool 4.
        let table = format_op_profile(&nodes, 2, 12);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].contains("ops 10.00 ms a run"), "{table}");
        assert!(
            lines[1].contains("Conv") && lines[1].contains("2 ops"),
            "{table}"
        );
        assert!(
            lines[1].contains("6.000 ms") && lines[1].contains("60.0%"),
            "{table}"
        );
        assert!(lines[1].ends_with("    2.0 GFLOP/s"), "{table}");
        assert!(!lines[2].contains("GFLOP/s"), "{table}");
        assert!(
            lines[2].contains("Pool") && lines[2].contains("40.0%"),
            "{table}"
        );
        assert_eq!(lines[3].trim(), "slowest ops:");
        assert!(
            lines[4].contains("5.000 ms") && lines[4].contains(" c "),
            "{table}"
        );
        assert!(lines[4].ends_with("2.0 GFLOP/s"), "{table}");
        assert!(lines[6].contains(" a "), "{table}");
    }

    #[test]
    fn the_op_profile_lists_only_as_many_ops_as_asked() {
        let op = |node: &str, ms: u64| OpTime {
            kind: "Pool".into(),
            node: node.into(),
            shape: "1,8,8,16".into(),
            time: Duration::from_millis(ms),
            macs: 0,
        };
        let nodes = [op("a", 1), op("b", 3), op("c", 2)];
        let listed = |n| {
            let table = format_op_profile(&nodes, 1, n);
            let ops = table.lines().skip_while(|l| l.trim() != "slowest ops:");
            ops.skip(1)
                .map(|l| l.split_whitespace().nth(4).unwrap_or("").to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(listed(2), ["b", "c"]);
        assert_eq!(listed(usize::MAX), ["b", "c", "a"]);
    }

    #[test]
    fn percentiles_of_known_samples() {
        let mut s = StageStats::new("x");
        for ms in 1..=100u64 {
            s.record(Duration::from_millis(ms));
        }
        assert_eq!(s.count(), 100);
        assert!((s.quantile_ms(0.5) - 50.0).abs() < 0.1);
        assert!((s.quantile_ms(0.95) - 95.0).abs() < 0.1);
        assert!((s.quantile_ms(0.99) - 99.0).abs() < 0.1);
        assert!((s.mean_ms() - 50.5).abs() < 0.1);
        assert!(s.row().starts_with("x "));
    }

    const ASTRONAUT: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/frames/astronaut"
    );

    /// The astronaut's 12 frames each timed in every stage `names`, the pose
    /// detector on the first frame of each pass (and whenever tracking was lost).
    fn assert_every_frame_timed(report: &PipelineReport, names: &[&str]) {
        assert_eq!(report.frames(), 12);
        for name in names {
            let stage = report.stage(name).unwrap_or_else(|| panic!("no {name}"));
            assert_eq!(stage.count(), 12, "{name}");
        }
        let detections = report.stage("pose detect").unwrap().count();
        assert!(
            (2..12).contains(&detections),
            "{detections} pose detections"
        );
    }

    #[test]
    fn pipeline_bench_times_every_stage_of_every_frame() {
        let models = &ModelSource::BuiltIn;
        // 10 frames in the folder, 12 timed: the folder replays once, from a
        // fresh start, so the pose detector runs on frame 0 of each pass.
        let report =
            bench_pipeline(Path::new(ASTRONAUT), models, Layout::PoseHands, 12, false).unwrap();
        let names = [
            "decode",
            "pose landmarks",
            "hand recrop",
            "hands",
            "landmarks",
            "total",
        ];
        assert_every_frame_timed(&report, &names);
        assert!(report.stage("face").is_none(), "no face path for 258");
        let total = report.stage("total").unwrap().mean_ms();
        let landmarks = report.stage("landmarks").unwrap().mean_ms();
        assert!(total >= landmarks && landmarks > 0.0);
        let text = report.to_string();
        assert!(text.contains("layout 258, 12 frames"), "{text}");
        assert!(text.contains("found: frames=12 pose=100%"), "{text}");
        // The astronaut's hands are out of the photo.
        assert_eq!(report.hands_run_ahead(), HandsRunAhead::default());
        assert!(
            text.contains("hands run ahead of the pose: 0 of 0"),
            "{text}"
        );
        // The models alone are tens of MiB; a sane process stays under 2 GiB.
        let mib = report.peak_rss_mib.unwrap();
        assert!((10.0..2048.0).contains(&mib), "{mib} MiB");
        assert!(text.contains("peak memory: "), "{text}");
    }

    #[test]
    fn pipelined_bench_times_each_frame_once_and_the_interval_between() {
        let models = &ModelSource::BuiltIn;
        // The replay from a fresh start finishes the first pass's last frame
        // first: still 12 frames, each counted once.
        let report =
            bench_pipeline(Path::new(ASTRONAUT), models, Layout::PoseHands, 12, true).unwrap();
        let names = [
            "decode",
            "pose landmarks",
            "hands",
            "landmarks",
            FRAME_INTERVAL,
        ];
        assert_every_frame_timed(&report, &names);
        let text = report.to_string();
        assert!(text.contains("found: frames=12 pose=100%"), "{text}");
        assert!(text.contains("pipelined: each frame's pose"), "{text}");
        assert!(text.contains("GFLOP/s at the interval p50"), "{text}");
        let plain =
            bench_pipeline(Path::new(ASTRONAUT), models, Layout::PoseHands, 12, false).unwrap();
        assert!(plain.stage(FRAME_INTERVAL).is_none());
        assert!(plain.to_string().contains("GFLOP/s at the landmarks p50"));
    }

    #[test]
    fn pipeline_bench_runs_the_face_path_for_1662() {
        let models = &ModelSource::BuiltIn;
        let report = bench_pipeline(
            Path::new(ASTRONAUT),
            models,
            Layout::PoseFaceHands,
            2,
            false,
        )
        .unwrap();
        assert_eq!(report.stage("face").map(StageStats::count), Some(2));
        assert!(report.to_string().contains("face=100%"));
    }

    #[test]
    fn zero_duration_is_recorded() {
        let mut s = StageStats::new("z");
        s.record(Duration::ZERO);
        assert_eq!(s.count(), 1);
    }
}

//! Headless output: JSON Lines on stdout, one line per decision and a stats
//! line every interval, a line when the sign model is reloaded (or a new one
//! refused), then a summary line when the input ends or a stop is asked for
//! (schema in README.md, "Headless output").

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::reload::{ModelEvent, ModelWatcher};
use super::transcript_log::{self, TranscriptLog, TranscriptRecord};
use crate::pipeline::{MetricsSnapshot, Percentiles, Pipeline, Recv, SignEvent, StopFlag};

/// Where a headless run's news goes besides stdout.
#[derive(Default)]
pub struct Outputs<'a> {
    /// Reloads of the sign model to report.
    pub watcher: Option<&'a ModelWatcher>,
    /// `--transcript FILE`.
    pub transcript: Option<TranscriptLog>,
}

/// Prints decisions and stats until the pipeline ends or a stop; the summary
/// line's counts satisfy `frames_in = processed + dropped`.
pub fn run(
    pipeline: Pipeline,
    interval: Duration,
    stop: &StopFlag,
    outputs: Outputs<'_>,
) -> anyhow::Result<()> {
    match print(pipeline, interval, stop, outputs) {
        // The reader went away (e.g. `| head`): a normal way to stop.
        Err(err) if is_broken_pipe(&err) => Ok(()),
        other => other,
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

fn print(
    pipeline: Pipeline,
    interval: Duration,
    stop: &StopFlag,
    outputs: Outputs<'_>,
) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    write_lines(pipeline, interval, stop, outputs, &mut stdout.lock())
}

/// The JSON Lines of a run, to `out`.
fn write_lines(
    pipeline: Pipeline,
    interval: Duration,
    stop: &StopFlag,
    mut outputs: Outputs<'_>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let started = pipeline.started();
    let mut labels = pipeline.labels().to_vec();
    let mut next_stats = Instant::now() + interval;
    let mut decisions = |pipeline: &Pipeline, labels: &[String], out: &mut dyn Write| {
        for sign in pipeline.drain_signs() {
            transcript_log::append_to(&mut outputs.transcript, &TranscriptRecord::of(&sign));
            writeln!(out, "{}", decision_line(&sign, labels, started))?;
        }
        anyhow::Ok(())
    };
    loop {
        let closed = matches!(
            pipeline.recv_newest(Duration::from_millis(20)),
            Recv::Closed
        );
        decisions(&pipeline, &labels, out)?;
        for event in outputs
            .watcher
            .map(ModelWatcher::drain_events)
            .unwrap_or_default()
        {
            if let ModelEvent::Loaded { labels: new, .. } = &event {
                labels.clone_from(new);
            }
            writeln!(out, "{}", model_line(&event, pipeline.started()))?;
            out.flush()?;
        }
        if Instant::now() >= next_stats {
            writeln!(out, "{}", stats_line("stats", &pipeline.snapshot()))?;
            out.flush()?;
            next_stats += interval;
        }
        if closed || stop.is_requested() {
            break;
        }
    }
    decisions(&pipeline, &labels, out)?;
    // A failed stage still gets its summary line (the counts so far, and
    // the error), then the error goes on to stderr and the exit status.
    let controls = pipeline.shared_controls();
    let last = pipeline.snapshot();
    let finished = pipeline.finish();
    let mut summary = stats_line("summary", finished.as_ref().unwrap_or(&last));
    if let Err(err) = &finished {
        // Every stage has ended, so the failure is recorded by now.
        summary["error"] = json!(
            controls
                .failure()
                .unwrap_or_else(|| crate::report::chain(err))
        );
    }
    writeln!(out, "{summary}")?;
    out.flush()?;
    finished?;
    Ok(())
}

/// One decision: time since start, frame, sign, probability, every class's probability.
pub fn decision_line(sign: &SignEvent, labels: &[String], started: Duration) -> Value {
    let probabilities: Map<String, Value> = labels
        .iter()
        .zip(&sign.probabilities)
        .map(|(l, p)| (l.clone(), json!(round(f64::from(*p)))))
        .collect();
    json!({
        "type": "decision",
        "time": round(sign.decided.saturating_sub(started).as_secs_f64()),
        "frame": sign.sequence,
        "sign": sign.label,
        "probability": round(f64::from(sign.probability)),
        "probabilities": probabilities,
        "latency_ms": round(sign.decided.saturating_sub(sign.captured).as_secs_f64() * 1000.0),
    })
}

/// A reload of the sign model: `{"type":"model","time":..,"path":..,"labels":[..]}`,
/// or `{"type":"model_error","time":..,"path":..,"error":..}` when refused.
pub fn model_line(event: &ModelEvent, started: Duration) -> Value {
    let time = round(
        crate::capture::monotonic_now()
            .saturating_sub(started)
            .as_secs_f64(),
    );
    match event {
        ModelEvent::Loaded { path, labels } => {
            json!({"type": "model", "time": time, "path": path, "labels": labels})
        }
        ModelEvent::Failed { path, error } => {
            json!({"type": "model_error", "time": time, "path": path, "error": error})
        }
    }
}

/// A stats or summary line: counts, drops, fps and latency percentiles per stage.
pub fn stats_line(kind: &str, m: &MetricsSnapshot) -> Value {
    let pct =
        |p: &Percentiles| json!({"p50": round(p.p50), "p95": round(p.p95), "p99": round(p.p99)});
    json!({
        "type": kind,
        "time": round(m.elapsed_s),
        "frames_in": m.frames_in,
        "processed": m.processed,
        "dropped": m.dropped,
        "in_flight": m.in_flight,
        "drops": m.drops,
        "pipelined": m.pipelined,
        "fps": {
            "capture": round(m.capture.fps),
            "landmarks": round(m.landmarks.fps),
            "classify": round(m.classify.fps),
        },
        "latency_ms": {
            "capture": pct(&m.capture.service),
            "landmarks": pct(&m.landmarks.service),
            "classify": pct(&m.classify.service),
            "end_to_end": pct(&m.end_to_end),
        },
        "landmark_stages_ms": m
            .landmark_stages
            .iter()
            .map(|(name, p)| (name.clone(), pct(p)))
            .collect::<Map<String, Value>>(),
    })
}

/// Three decimals are plenty and keep lines short.
fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_line_schema() {
        let sign = SignEvent {
            sequence: 42,
            captured: Duration::from_millis(1_400),
            decided: Duration::from_millis(1_450),
            index: 1,
            label: "thanks".into(),
            probability: 0.875,
            probabilities: vec![0.125, 0.875],
        };
        let labels = vec!["hello".to_string(), "thanks".to_string()];
        let line = decision_line(&sign, &labels, Duration::from_millis(1_000));
        assert_eq!(
            line,
            json!({"type": "decision", "time": 0.45, "frame": 42, "sign": "thanks", "probability": 0.875,
                   "probabilities": {"hello": 0.125, "thanks": 0.875}, "latency_ms": 50.0})
        );
    }

    #[test]
    fn a_failed_stage_still_ends_with_a_summary_line_naming_the_error() {
        use crate::capture::{Replay, ReplayConfig};
        use crate::landmarks::{Holistic, HolisticOptions};
        let clip = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/media/cow_correct.gif"
        );
        let source = Replay::open(&ReplayConfig {
            max_speed: true,
            ..ReplayConfig::new(clip)
        })
        .unwrap();
        let config = crate::pipeline::PipelineConfig {
            smoothing: crate::classify::SmoothingConfig::default(),
            transcript_length: 10,
            mirror: false,
            max_frames: None,
            handoff_capacity: 4,
            // Every frame through: the window fills and the classifier panics.
            every_frame: true,
            keep_landmarked: false,
            preview: false,
        };
        let pipeline = Pipeline::start(
            Box::new(source),
            Box::new(Holistic::new(&HolisticOptions::default()).unwrap()),
            Box::new(crate::pipeline::test_support::PanicsOnPredict::new(
                "the test classifier's bug",
            )),
            &config,
            StopFlag::new(),
        )
        .unwrap();
        let mut out = Vec::new();
        let err = write_lines(
            pipeline,
            Duration::from_secs(60),
            &StopFlag::new(),
            Outputs::default(),
            &mut out,
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("the test classifier's bug"),
            "{err}"
        );
        let text = String::from_utf8(out).unwrap();
        let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(last["type"], "summary");
        assert_eq!(
            last["error"],
            "classify: the thread panicked: the test classifier's bug"
        );
        assert!(last["processed"].as_u64().unwrap() < 47);
    }

    #[test]
    fn stats_line_has_every_figure() {
        let line = stats_line("stats", &MetricsSnapshot::default());
        for key in [
            "frames_in",
            "processed",
            "dropped",
            "drops",
            "pipelined",
            "fps",
            "latency_ms",
        ] {
            assert!(line.get(key).is_some(), "{key} missing in {line}");
        }
        assert!(line["latency_ms"]["end_to_end"]["p99"].is_number());
    }
}

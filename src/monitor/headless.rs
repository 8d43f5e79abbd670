//! Headless output: JSON Lines on stdout, one line per decision and a stats
//! line every interval, then a summary line when the input ends or a stop
//! is asked for (schema in README.md, "Headless output").

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::pipeline::{MetricsSnapshot, Percentiles, Pipeline, Recv, SignEvent, StopFlag};

/// Prints decisions and stats until the pipeline ends or a stop; the summary
/// line's counts satisfy `frames_in = processed + dropped`.
pub fn run(pipeline: Pipeline, interval: Duration, stop: &StopFlag) -> anyhow::Result<()> {
    match print(pipeline, interval, stop) {
        // The reader went away (e.g. `| head`): a normal way to stop.
        Err(err) if is_broken_pipe(&err) => Ok(()),
        other => other,
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

fn print(pipeline: Pipeline, interval: Duration, stop: &StopFlag) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let started = pipeline.started();
    let mut next_stats = Instant::now() + interval;
    loop {
        let closed = matches!(
            pipeline.recv_newest(Duration::from_millis(20)),
            Recv::Closed
        );
        for sign in pipeline.drain_signs() {
            writeln!(out, "{}", decision_line(&sign, pipeline.labels(), started))?;
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
    for sign in pipeline.drain_signs() {
        writeln!(out, "{}", decision_line(&sign, pipeline.labels(), started))?;
    }
    let summary = pipeline.finish()?;
    writeln!(out, "{}", stats_line("summary", &summary))?;
    out.flush()?;
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
    fn stats_line_has_every_figure() {
        let line = stats_line("stats", &MetricsSnapshot::default());
        for key in [
            "frames_in",
            "processed",
            "dropped",
            "drops",
            "fps",
            "latency_ms",
        ] {
            assert!(line.get(key).is_some(), "{key} missing in {line}");
        }
        assert!(line["latency_ms"]["end_to_end"]["p99"].is_number());
    }
}

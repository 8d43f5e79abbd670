//! The transcript as a file: each decision as one JSON line (wall-clock time,
//! sign, probability), appended as it is made (`--transcript FILE`) or
//! written all at once on a key.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::capture::monotonic_now;
use crate::pipeline::SignEvent;

/// One decision, with the wall-clock time it was made.
#[derive(Clone, Debug, PartialEq)]
pub struct TranscriptRecord {
    /// When it was decided (UTC).
    pub wall: OffsetDateTime,
    /// The sign.
    pub sign: String,
    /// Its probability.
    pub probability: f32,
}

impl TranscriptRecord {
    /// The record of a decision; its monotonic time becomes wall-clock time.
    pub fn of(sign: &SignEvent) -> TranscriptRecord {
        TranscriptRecord {
            wall: wall_clock(sign.decided),
            sign: sign.label.clone(),
            probability: sign.probability,
        }
    }

    /// The JSON line: `{"time": RFC 3339 UTC, "sign": ..., "probability": ...}`.
    pub fn line(&self) -> String {
        let time = self
            .wall
            .format(&Rfc3339)
            .unwrap_or_else(|_| self.wall.unix_timestamp().to_string());
        let probability = (f64::from(self.probability) * 1000.0).round() / 1000.0;
        json!({"time": time, "sign": self.sign, "probability": probability}).to_string()
    }
}

/// The wall-clock time of a CLOCK_MONOTONIC moment shortly in the past.
pub fn wall_clock(monotonic: Duration) -> OffsetDateTime {
    let ago = monotonic_now().saturating_sub(monotonic);
    OffsetDateTime::now_utc() - ago
}

/// A transcript file that decisions are appended to.
pub struct TranscriptLog {
    path: PathBuf,
    file: File,
}

impl TranscriptLog {
    /// Opens `path` for appending (created if missing).
    pub fn open(path: &Path) -> anyhow::Result<TranscriptLog> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening the transcript {}", path.display()))?;
        Ok(TranscriptLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one decision and flushes, so a crash loses nothing decided.
    pub fn append(&mut self, record: &TranscriptRecord) -> anyhow::Result<()> {
        writeln!(self.file, "{}", record.line())
            .and_then(|()| self.file.flush())
            .with_context(|| format!("appending to the transcript {}", self.path.display()))
    }
}

/// Appends `record` to `log` if there is one; a failure is logged, not fatal
/// (the dashboard must keep running when the disk fills).
pub fn append_to(log: &mut Option<TranscriptLog>, record: &TranscriptRecord) {
    if let Some(log) = log
        && let Err(err) = log.append(record)
    {
        tracing::error!("{err:#}");
    }
}

/// Writes `records` as a new JSON Lines file in `dir`, named after the time
/// (`signtop-transcript-YYYYMMDD-HHMMSS.jsonl`, UTC), atomically; returns its path.
pub fn write_snapshot(dir: &Path, records: &[TranscriptRecord]) -> anyhow::Result<PathBuf> {
    let now = OffsetDateTime::now_utc();
    let stem = format!(
        "signtop-transcript-{:04}{:02}{:02}-{:02}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    // Twice in a second: -2, -3, ... rather than over the first.
    let path = (1..)
        .map(|n| match n {
            1 => dir.join(format!("{stem}.jsonl")),
            n => dir.join(format!("{stem}-{n}.jsonl")),
        })
        .find(|p| !p.exists())
        .unwrap_or_else(|| dir.join(format!("{stem}.jsonl")));
    let context = || format!("writing the transcript {}", path.display());
    let mut temp = tempfile::Builder::new()
        .prefix(".signtop-transcript-")
        .tempfile_in(dir)
        .with_context(context)?;
    for record in records {
        writeln!(temp, "{}", record.line()).with_context(context)?;
    }
    temp.flush().with_context(context)?;
    temp.persist(&path).with_context(context)?;
    Ok(std::path::absolute(&path).unwrap_or(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(sign: &str) -> TranscriptRecord {
        TranscriptRecord {
            wall: OffsetDateTime::from_unix_timestamp(1_764_576_000).unwrap(),
            sign: sign.into(),
            probability: 0.91234,
        }
    }

    #[test]
    fn a_line_has_the_time_sign_and_probability() {
        assert_eq!(
            record("Cow").line(),
            r#"{"time":"2025-12-01T08:00:00Z","sign":"Cow","probability":0.912}"#
        );
    }

    #[test]
    fn decisions_are_appended_and_a_snapshot_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(&path, "{\"earlier\":true}\n").unwrap();
        let mut log = Some(TranscriptLog::open(&path).unwrap());
        append_to(&mut log, &record("Cow"));
        append_to(&mut log, &record("Bird"));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 3, "appended after what was there: {text}");
        assert!(lines[2].contains("Bird"));

        let snapshot = write_snapshot(dir.path(), &[record("Cow")]).unwrap();
        assert!(snapshot.is_absolute());
        let again = write_snapshot(dir.path(), &[]).unwrap();
        assert_ne!(again, snapshot, "a second one never replaces the first");
        assert_eq!(
            std::fs::read_to_string(&snapshot).unwrap(),
            format!("{}\n", record("Cow").line())
        );
    }

    #[test]
    fn wall_clock_is_now_for_now() {
        let then = wall_clock(monotonic_now());
        let diff = (OffsetDateTime::now_utc() - then).abs();
        assert!(diff < time::Duration::seconds(1), "{diff}");
    }
}

//! Training and test data: labelled keypoint recordings from one or more sources.
//!
//! Two forms are read:
//! - SignPose's prefix form: `PREFIX_X.npy` (rows, frames, features) float32,
//!   `PREFIX_y.npy` (rows,) uint8 class index, `PREFIX.json` with `classes` and
//!   `source_sequence_ids` (recording number of each row within its class);
//! - the recording folder form: `DIR/<class>/<recording>.npy`, one recording of
//!   shape (frames, features) float32 per file, of any length; classes are the
//!   sub-folder names. A `<recording>.json` sidecar beside it (what `signtop
//!   record` writes) may give the frames' capture times or rate.
//!
//! Several sources are merged by class name. A source in the 1662 layout is
//! used for a 258 model by dropping the face columns. Each recording belongs
//! to a recording group, used to split by recording (never by frame);
//! recordings that are exact copies of each other share a group, so a
//! duplicated recording cannot sit on both sides of a split.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, Array3};
use ndarray_npy::read_npy;
use serde::Deserialize;

use crate::classify::window::frames_at_interval;
use crate::landmarks::keypoints::Layout;

/// Errors reading training data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Neither a folder nor a prefix with `_X.npy`.
    #[error(
        "{0}: not a data folder (DIR/<class>/<recording>.npy) nor a prefix with {0}_X.npy, {0}_y.npy and {0}.json"
    )]
    NotFound(String),
    /// A .npy file cannot be read as the expected array.
    #[error("reading {path}: {message}")]
    Npy {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The JSON description is missing or wrong.
    #[error("reading {path}: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Shapes or counts that do not fit together.
    #[error("{path}: {message}")]
    Inconsistent {
        /// The file or folder.
        path: PathBuf,
        /// What does not fit.
        message: String,
    },
    /// A folder with no usable recordings.
    #[error("{0}: no recordings found (expected DIR/<class>/<recording>.npy files)")]
    Empty(PathBuf),
    /// A source whose layout cannot be turned into the one asked for.
    #[error(
        "{path}: holds {from}-feature keypoints, which cannot become the {to} layout (only 1662 -> 258 drops columns)"
    )]
    Layout {
        /// The source.
        path: PathBuf,
        /// Its layout.
        from: Layout,
        /// The layout asked for.
        to: Layout,
    },
}

/// One labelled recording: frames x features in the dataset's layout.
#[derive(Clone, Debug)]
pub struct Recording {
    /// The keypoints, one row a frame.
    pub frames: Array2<f32>,
    /// Class index into the dataset's labels.
    pub label: usize,
    /// Recording group (exact duplicates share one).
    pub group: usize,
    /// Index of the source it came from, into [`Dataset::sources`].
    pub source: usize,
    /// Where it came from, for messages: a file, or `PREFIX row N`.
    pub name: String,
    /// Capture time of each frame in seconds from the first, when the
    /// recording's sidecar gives it; `None`: the model's own frame rate.
    pub times: Option<Vec<f64>>,
}

impl Recording {
    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames.nrows()
    }

    /// True when the recording has no frame.
    pub fn is_empty(&self) -> bool {
        self.frames.nrows() == 0
    }

    /// Its frames at one every `interval` seconds: resampled by capture time
    /// when it has them, else as recorded (taken to be at that rate already).
    pub fn at_interval(&self, interval: f64) -> Array2<f32> {
        match &self.times {
            Some(times) => frames_at_interval(&self.frames, times, interval),
            None => self.frames.clone(),
        }
    }
}

/// Labelled keypoint recordings from one or more sources.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Class names, index = label.
    pub labels: Vec<String>,
    /// Keypoint layout of every frame.
    pub layout: Layout,
    /// The recordings.
    pub recordings: Vec<Recording>,
    /// The sources as given, index = [`Recording::source`].
    pub sources: Vec<String>,
}

impl Dataset {
    /// Recordings in the dataset.
    pub fn len(&self) -> usize {
        self.recordings.len()
    }

    /// True when there are no recordings.
    pub fn is_empty(&self) -> bool {
        self.recordings.is_empty()
    }

    /// Class index of each recording.
    pub fn labels_of(&self) -> Vec<usize> {
        self.recordings.iter().map(|r| r.label).collect()
    }

    /// Recording group of each recording.
    pub fn groups(&self) -> Vec<usize> {
        self.recordings.iter().map(|r| r.group).collect()
    }

    /// The recordings `rows`, in that order (groups keep their ids).
    pub fn subset(&self, rows: &[usize]) -> Dataset {
        Dataset {
            labels: self.labels.clone(),
            layout: self.layout,
            recordings: rows.iter().map(|&r| self.recordings[r].clone()).collect(),
            sources: self.sources.clone(),
        }
    }

    /// The same recordings over `labels`, which must hold every label of
    /// this dataset (a label no recording has is fine).
    pub fn with_labels(&self, labels: Vec<String>) -> Dataset {
        let recordings = self
            .recordings
            .iter()
            .map(|r| Recording {
                label: labels
                    .iter()
                    .position(|l| *l == self.labels[r.label])
                    .unwrap_or(r.label),
                ..r.clone()
            })
            .collect();
        Dataset {
            labels,
            layout: self.layout,
            recordings,
            sources: self.sources.clone(),
        }
    }

    /// Indices of the recordings of source `source`.
    pub fn rows_of_source(&self, source: usize) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| self.recordings[i].source == source)
            .collect()
    }
}

/// Reads one source: a recording folder or a SignPose prefix, in its own layout.
pub fn load(spec: &Path) -> Result<Dataset, DataError> {
    load_all(&[spec.to_path_buf()], None)
}

/// Reads every source and merges them by class name (labels sorted by name).
/// With `layout`, every source is brought to it (1662 -> 258 drops the face);
/// without, the layout is 258 if any source is 258, else 1662.
pub fn load_all(specs: &[PathBuf], layout: Option<Layout>) -> Result<Dataset, DataError> {
    let raw: Vec<RawSource> = specs
        .iter()
        .map(|s| read_source(s))
        .collect::<Result<_, _>>()?;
    let layout = layout.unwrap_or_else(|| {
        if raw.iter().any(|s| s.layout == Layout::PoseHands) {
            Layout::PoseHands
        } else {
            Layout::PoseFaceHands
        }
    });
    let mut labels: Vec<String> = raw.iter().flat_map(|s| s.labels.clone()).collect();
    labels.sort();
    labels.dedup();
    let mut recordings = Vec::new();
    let mut sources = Vec::new();
    let mut group_base = 0;
    for (index, source) in raw.into_iter().enumerate() {
        let path = PathBuf::from(&source.spec);
        if source.layout != layout && source.layout != Layout::PoseFaceHands {
            return Err(DataError::Layout {
                path,
                from: source.layout,
                to: layout,
            });
        }
        let keys_end = source.recordings.iter().map(|r| r.key).max().unwrap_or(0) + 1;
        for r in source.recordings {
            let frames = convert_layout(r.frames, source.layout, layout);
            recordings.push(Recording {
                frames,
                label: labels
                    .iter()
                    .position(|l| *l == source.labels[r.class])
                    .unwrap_or_default(),
                group: group_base + r.key,
                source: index,
                name: r.name,
                times: r.times,
            });
        }
        group_base += keys_end;
        sources.push(source.spec);
    }
    merge_duplicate_groups(&mut recordings);
    Ok(Dataset {
        labels,
        layout,
        recordings,
        sources,
    })
}

/// A recording as read, before merging.
struct RawRecording {
    frames: Array2<f32>,
    class: usize,
    /// Recording key within the source (same key = same recording group).
    key: usize,
    name: String,
    times: Option<Vec<f64>>,
}

/// A source as read: its own labels and layout.
struct RawSource {
    spec: String,
    labels: Vec<String>,
    layout: Layout,
    recordings: Vec<RawRecording>,
}

fn read_source(spec: &Path) -> Result<RawSource, DataError> {
    if spec.is_dir() {
        return load_folder(spec);
    }
    let prefix = spec.to_string_lossy().to_string();
    if Path::new(&format!("{prefix}_X.npy")).is_file() {
        return load_prefix(&prefix);
    }
    Err(DataError::NotFound(prefix))
}

/// The columns of `to` taken from frames in `from` (identity when equal).
fn convert_layout(frames: Array2<f32>, from: Layout, to: Layout) -> Array2<f32> {
    if from == to {
        return frames;
    }
    let mut out = Array2::<f32>::zeros((frames.nrows(), to.features()));
    for (src, mut dst) in frames.outer_iter().zip(out.outer_iter_mut()) {
        let src = src
            .as_slice()
            .map(<[f32]>::to_vec)
            .unwrap_or_else(|| src.to_vec());
        dst.slice_mut(ndarray::s![to.pose()])
            .assign(&ndarray::ArrayView1::from(&src[from.pose()]));
        dst.slice_mut(ndarray::s![to.left_hand()])
            .assign(&ndarray::ArrayView1::from(&src[from.left_hand()]));
        dst.slice_mut(ndarray::s![to.right_hand()])
            .assign(&ndarray::ArrayView1::from(&src[from.right_hand()]));
    }
    out
}

#[derive(Deserialize)]
struct PrefixJson {
    classes: Vec<String>,
    source_sequence_ids: Option<Vec<usize>>,
}

fn load_prefix(prefix: &str) -> Result<RawSource, DataError> {
    let x_path = PathBuf::from(format!("{prefix}_X.npy"));
    let y_path = PathBuf::from(format!("{prefix}_y.npy"));
    let json_path = PathBuf::from(format!("{prefix}.json"));
    let x: Array3<f32> = read_npy(&x_path).map_err(|e| npy_error(&x_path, e))?;
    let y: Array1<u8> = read_npy(&y_path).map_err(|e| npy_error(&y_path, e))?;
    let meta: PrefixJson = read_json(&json_path)?;
    let inconsistent = |message: String| DataError::Inconsistent {
        path: x_path.clone(),
        message,
    };
    if x.shape()[0] != y.len() {
        return Err(inconsistent(format!(
            "{} sequences but {} labels in {}",
            x.shape()[0],
            y.len(),
            y_path.display()
        )));
    }
    if x.shape()[0] == 0 || x.shape()[1] == 0 {
        return Err(DataError::Empty(x_path));
    }
    let layout = layout_of(x.shape()[2], &x_path)?;
    let y: Vec<usize> = y.iter().map(|&c| usize::from(c)).collect();
    if let Some(bad) = y.iter().find(|&&c| c >= meta.classes.len()) {
        return Err(inconsistent(format!(
            "label {bad} but only {} classes in {}",
            meta.classes.len(),
            json_path.display()
        )));
    }
    let ids = match meta.source_sequence_ids {
        Some(ids) if ids.len() == y.len() => ids,
        Some(ids) => {
            return Err(inconsistent(format!(
                "{} source_sequence_ids for {} sequences",
                ids.len(),
                y.len()
            )));
        }
        None => (0..y.len()).collect(),
    };
    // A recording is (class, recording number): number them densely.
    let mut key_of: HashMap<(usize, usize), usize> = HashMap::new();
    let recordings = x
        .outer_iter()
        .zip(y.iter().zip(&ids))
        .enumerate()
        .map(|(row, (frames, (&class, &id)))| {
            let next = key_of.len();
            RawRecording {
                frames: frames.to_owned(),
                class,
                key: *key_of.entry((class, id)).or_insert(next),
                name: format!("{prefix} row {row}"),
                times: None,
            }
        })
        .collect();
    Ok(RawSource {
        spec: prefix.to_string(),
        labels: meta.classes,
        layout,
        recordings,
    })
}

/// What a recording's sidecar says about time (other fields are ignored here).
#[derive(Deserialize)]
struct RecordingSidecar {
    timestamps_ms: Option<Vec<f64>>,
    fps: Option<f64>,
}

fn load_folder(dir: &Path) -> Result<RawSource, DataError> {
    let io_err = |path: &Path, e: std::io::Error| DataError::Inconsistent {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut classes: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    let mut labels = Vec::new();
    let mut recordings = Vec::new();
    let mut layout = None;
    for class_dir in &classes {
        let mut files: Vec<PathBuf> = std::fs::read_dir(class_dir)
            .map_err(|e| io_err(class_dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "npy"))
            .collect();
        if files.is_empty() {
            continue;
        }
        files.sort();
        let class = labels.len();
        labels.push(file_name(class_dir));
        for file in files {
            let frames: Array2<f32> = read_npy(&file).map_err(|e| npy_error(&file, e))?;
            if frames.nrows() == 0 {
                return Err(DataError::Empty(file));
            }
            let this = layout_of(frames.ncols(), &file)?;
            if *layout.get_or_insert(this) != this {
                return Err(DataError::Inconsistent {
                    path: file,
                    message: format!(
                        "{this}-feature keypoints among recordings of {} features",
                        layout.map_or(0, Layout::features)
                    ),
                });
            }
            let times = recording_times(&file, frames.nrows())?;
            recordings.push(RawRecording {
                frames,
                class,
                key: recordings.len(),
                name: file.display().to_string(),
                times,
            });
        }
    }
    let Some(layout) = layout else {
        return Err(DataError::Empty(dir.to_path_buf()));
    };
    Ok(RawSource {
        spec: dir.display().to_string(),
        labels,
        layout,
        recordings,
    })
}

/// Frame times (seconds from the first) from the recording's sidecar, if it has one.
fn recording_times(npy: &Path, frames: usize) -> Result<Option<Vec<f64>>, DataError> {
    let path = npy.with_extension("json");
    if !path.is_file() {
        return Ok(None);
    }
    let sidecar: RecordingSidecar = read_json(&path)?;
    let bad = |message: String| DataError::Json {
        path: path.clone(),
        message,
    };
    if let Some(stamps) = sidecar.timestamps_ms {
        if stamps.len() != frames {
            return Err(bad(format!(
                "{} timestamps for {frames} frames",
                stamps.len()
            )));
        }
        let first = stamps.first().copied().unwrap_or(0.0);
        let times: Vec<f64> = stamps.iter().map(|t| (t - first) / 1000.0).collect();
        if times.iter().any(|t| !t.is_finite()) || times.windows(2).any(|w| w[1] < w[0]) {
            return Err(bad(
                "timestamps_ms must be numbers that do not go backwards".into(),
            ));
        }
        return Ok(Some(times));
    }
    match sidecar.fps {
        Some(fps) if fps.is_finite() && fps > 0.0 => {
            Ok(Some((0..frames).map(|i| i as f64 / fps).collect()))
        }
        Some(fps) => Err(bad(format!("fps {fps} must be above 0"))),
        None => Ok(None),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, DataError> {
    let json_err = |message: String| DataError::Json {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| json_err(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| json_err(e.to_string()))
}

fn layout_of(features: usize, path: &Path) -> Result<Layout, DataError> {
    Layout::from_features(features).map_err(|e| DataError::Inconsistent {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Gives recordings with identical values the same group (the smallest id).
fn merge_duplicate_groups(recordings: &mut [Recording]) {
    let mut by_content: HashMap<u64, usize> = HashMap::new();
    let mut renamed: HashMap<usize, usize> = HashMap::new();
    for r in recordings.iter() {
        let mut hasher = DefaultHasher::new();
        r.frames.dim().hash(&mut hasher);
        for v in r.frames.iter() {
            v.to_bits().hash(&mut hasher);
        }
        let first = *by_content.entry(hasher.finish()).or_insert(r.group);
        if first != r.group {
            renamed.insert(r.group, first);
        }
    }
    for r in recordings.iter_mut() {
        // Follow chains (a group renamed to one that was itself renamed).
        let mut g = r.group;
        while let Some(&next) = renamed.get(&g) {
            if next == g {
                break;
            }
            g = next;
        }
        r.group = g;
    }
    let mut dense = HashMap::new();
    for r in recordings.iter_mut() {
        let n = dense.len();
        r.group = *dense.entry(r.group).or_insert(n);
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

fn npy_error(path: &Path, err: impl std::fmt::Display) -> DataError {
    DataError::Npy {
        path: path.to_path_buf(),
        message: err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray_npy::write_npy;

    const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/signpose/");

    fn shared(name: &str) -> PathBuf {
        PathBuf::from(format!("{SHARED}{name}"))
    }

    #[test]
    fn reads_the_shared_prefix_with_recording_groups() {
        let data = load(&shared("bp_hp6_dev")).unwrap();
        assert_eq!(data.len(), 288);
        assert!(data.recordings.iter().all(|r| r.len() == 30));
        assert_eq!(data.layout, Layout::PoseHands);
        assert_eq!(data.labels.len(), 6);
        // 48 recordings a class; the Elephant duplicates merge groups.
        let distinct: std::collections::HashSet<_> = data.groups().into_iter().collect();
        assert!(
            distinct.len() < 288 && distinct.len() >= 280,
            "{}",
            distinct.len()
        );
    }

    #[test]
    fn merges_sources_by_class_name_and_drops_the_face_for_258() {
        let data = load_all(&[shared("bp_hp6_dev"), shared("fm5_dev")], None).unwrap();
        assert_eq!(data.layout, Layout::PoseHands);
        assert_eq!(
            data.labels,
            [
                "Alligator",
                "Bird",
                "Butterfly",
                "Cow",
                "Elephant",
                "Gorilla",
                "No Action"
            ]
        );
        assert_eq!(data.len(), 288 + 240);
        assert_eq!(data.rows_of_source(1).len(), 240);
        let fm5 = load(&shared("fm5_dev")).unwrap();
        let first = &fm5.recordings[0];
        let merged = &data.recordings[288];
        let layout = Layout::PoseFaceHands;
        assert_eq!(
            merged.frames.row(3).to_vec()[..132],
            first.frames.row(3).to_vec()[layout.pose()]
        );
        assert_eq!(
            merged.frames.row(3).to_vec()[132..],
            first.frames.row(3).to_vec()[layout.left_hand().start..]
        );
        assert_eq!(data.labels[merged.label], fm5.labels[first.label]);
        // Groups of different sources never collide.
        let a: std::collections::HashSet<_> = data
            .rows_of_source(0)
            .iter()
            .map(|&i| data.recordings[i].group)
            .collect();
        assert!(
            data.rows_of_source(1)
                .iter()
                .all(|&i| !a.contains(&data.recordings[i].group))
        );

        let err = load_all(&[shared("bp_hp6_dev")], Some(Layout::PoseFaceHands))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bp_hp6_dev") && err.contains("cannot become"),
            "{err}"
        );
    }

    #[test]
    fn reads_a_recording_folder_of_any_length_with_times() {
        let dir = tempfile::tempdir().unwrap();
        for (class, n) in [("Cow", 2), ("Bird", 3)] {
            std::fs::create_dir(dir.path().join(class)).unwrap();
            for i in 0..n {
                let seq = Array2::<f32>::from_elem((30 + 7 * i, 258), i as f32);
                write_npy(dir.path().join(class).join(format!("{i}.npy")), &seq).unwrap();
            }
        }
        std::fs::write(
            dir.path().join("Cow").join("1.json"),
            r#"{"format": "signtop-recording/1", "fps": 20.0}"#,
        )
        .unwrap();
        let data = load(dir.path()).unwrap();
        assert_eq!(data.labels, vec!["Bird", "Cow"]);
        assert_eq!(data.labels_of(), vec![0, 0, 0, 1, 1]);
        assert_eq!(data.recordings[4].len(), 37);
        let times = data.recordings[4].times.as_ref().unwrap();
        assert_eq!(times.len(), 37);
        assert!((times[2] - 0.1).abs() < 1e-9);
        assert!(data.recordings[0].times.is_none());
        // Identical content across classes still merges: rows 0 and 3 are both zeros.
        assert_eq!(data.recordings[0].group, data.recordings[3].group);

        std::fs::write(dir.path().join("Cow").join("bad.npy"), b"not numpy").unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("bad.npy"), "{err}");

        let empty = tempfile::tempdir().unwrap();
        let err = load(empty.path()).unwrap_err().to_string();
        assert!(err.contains("no recordings found"), "{err}");
        let err = load(Path::new("/nonexistent/prefix"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a data folder"), "{err}");
    }
}

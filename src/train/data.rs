//! Training data: keypoint sequences with labels and recording groups.
//!
//! Two forms are read:
//! - SignPose's prefix form: `PREFIX_X.npy` (rows, frames, features) float32,
//!   `PREFIX_y.npy` (rows,) uint8 class index, `PREFIX.json` with `classes` and
//!   `source_sequence_ids` (recording number of each row within its class);
//! - the recording folder form: `DIR/<class>/<recording>.npy`, one sequence of
//!   shape (frames, features) float32 per file; classes are the sub-folder
//!   names in name order. This is what `signtop record` writes.
//!
//! Each row belongs to a recording group, used to split by recording (never by
//! frame). Rows that are exact copies of each other share a group, so a
//! duplicated recording cannot sit on both sides of a split.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, Array3, Axis};
use ndarray_npy::read_npy;
use serde::Deserialize;

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
    /// A folder with no usable sequences.
    #[error("{0}: no sequences found (expected DIR/<class>/<recording>.npy files)")]
    Empty(PathBuf),
}

/// Labelled keypoint sequences.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Class names, index = label.
    pub labels: Vec<String>,
    /// Keypoint layout of every frame.
    pub layout: Layout,
    /// Sequences: (rows, frames, features).
    pub x: Array3<f32>,
    /// Class index of each row.
    pub y: Vec<usize>,
    /// Recording group of each row (exact duplicates share one).
    pub groups: Vec<usize>,
}

impl Dataset {
    /// Rows in the dataset.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Frames per sequence.
    pub fn frames(&self) -> usize {
        self.x.shape()[1]
    }

    /// The rows `rows`, in that order (groups keep their ids).
    pub fn subset(&self, rows: &[usize]) -> Dataset {
        Dataset {
            labels: self.labels.clone(),
            layout: self.layout,
            x: self.x.select(Axis(0), rows),
            y: rows.iter().map(|&r| self.y[r]).collect(),
            groups: rows.iter().map(|&r| self.groups[r]).collect(),
        }
    }

    /// One row as frames x features, row-major.
    pub fn row(&self, index: usize) -> Vec<f32> {
        self.x.index_axis(Axis(0), index).iter().copied().collect()
    }
}

/// Reads `spec`: a recording folder or a SignPose prefix.
pub fn load(spec: &Path) -> Result<Dataset, DataError> {
    if spec.is_dir() {
        return load_folder(spec);
    }
    let prefix = spec.to_string_lossy().to_string();
    if Path::new(&format!("{prefix}_X.npy")).is_file() {
        return load_prefix(&prefix);
    }
    Err(DataError::NotFound(prefix))
}

#[derive(Deserialize)]
struct PrefixJson {
    classes: Vec<String>,
    source_sequence_ids: Option<Vec<usize>>,
}

fn load_prefix(prefix: &str) -> Result<Dataset, DataError> {
    let x_path = PathBuf::from(format!("{prefix}_X.npy"));
    let y_path = PathBuf::from(format!("{prefix}_y.npy"));
    let json_path = PathBuf::from(format!("{prefix}.json"));
    let x: Array3<f32> = read_npy(&x_path).map_err(|e| npy_error(&x_path, e))?;
    let y: Array1<u8> = read_npy(&y_path).map_err(|e| npy_error(&y_path, e))?;
    let text = std::fs::read_to_string(&json_path).map_err(|e| DataError::Json {
        path: json_path.clone(),
        message: e.to_string(),
    })?;
    let meta: PrefixJson = serde_json::from_str(&text).map_err(|e| DataError::Json {
        path: json_path.clone(),
        message: e.to_string(),
    })?;
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
    let y: Vec<usize> = y.iter().map(|&c| usize::from(c)).collect();
    if let Some(bad) = y.iter().find(|&&c| c >= meta.classes.len()) {
        return Err(inconsistent(format!(
            "label {bad} but only {} classes in {}",
            meta.classes.len(),
            json_path.display()
        )));
    }
    let recordings = match meta.source_sequence_ids {
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
    let keys: Vec<(usize, usize)> = y.iter().copied().zip(recordings).collect();
    finish(x, y, &keys, meta.classes, &x_path)
}

fn load_folder(dir: &Path) -> Result<Dataset, DataError> {
    let io_err = |e: std::io::Error| DataError::Inconsistent {
        path: dir.to_path_buf(),
        message: e.to_string(),
    };
    let mut classes: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    let mut labels = Vec::new();
    let mut sequences: Vec<Array2<f32>> = Vec::new();
    let mut keys = Vec::new();
    for class_dir in &classes {
        let mut files: Vec<PathBuf> = std::fs::read_dir(class_dir)
            .map_err(io_err)?
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
            let seq: Array2<f32> = read_npy(&file).map_err(|e| npy_error(&file, e))?;
            keys.push((class, sequences.len()));
            sequences.push(seq);
        }
    }
    if sequences.is_empty() {
        return Err(DataError::Empty(dir.to_path_buf()));
    }
    let shape = sequences[0].dim();
    if let Some(bad) = sequences.iter().position(|s| s.dim() != shape) {
        return Err(DataError::Inconsistent {
            path: dir.to_path_buf(),
            message: format!(
                "sequence {} has shape {:?}, the first has {:?}",
                bad,
                sequences[bad].dim(),
                shape
            ),
        });
    }
    let views: Vec<_> = sequences.iter().map(|s| s.view()).collect();
    let x = ndarray::stack(Axis(0), &views).map_err(|e| DataError::Inconsistent {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let y = keys.iter().map(|k| k.0).collect();
    finish(x, y, &keys, labels, dir)
}

fn finish(
    x: Array3<f32>,
    y: Vec<usize>,
    keys: &[(usize, usize)],
    labels: Vec<String>,
    path: &Path,
) -> Result<Dataset, DataError> {
    let layout = Layout::from_features(x.shape()[2]).map_err(|e| DataError::Inconsistent {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if x.shape()[0] == 0 || x.shape()[1] == 0 {
        return Err(DataError::Empty(path.to_path_buf()));
    }
    if labels.len() < 2 {
        return Err(DataError::Inconsistent {
            path: path.to_path_buf(),
            message: format!(
                "{} class(es): a classifier needs at least two",
                labels.len()
            ),
        });
    }
    let groups = recording_groups(&x, keys);
    Ok(Dataset {
        labels,
        layout,
        x,
        y,
        groups,
    })
}

/// Group ids by (class, recording), merging rows whose values are identical.
fn recording_groups(x: &Array3<f32>, keys: &[(usize, usize)]) -> Vec<usize> {
    let mut by_content: HashMap<u64, usize> = HashMap::new();
    let mut by_key: HashMap<(usize, usize), usize> = HashMap::new();
    let mut groups = Vec::with_capacity(keys.len());
    let mut next = 0;
    for (row, key) in x.outer_iter().zip(keys) {
        let mut hasher = DefaultHasher::new();
        for v in row.iter() {
            v.to_bits().hash(&mut hasher);
        }
        let content = hasher.finish();
        let group = match (by_content.get(&content), by_key.get(key)) {
            (Some(&g), _) | (None, Some(&g)) => g,
            (None, None) => {
                next += 1;
                next - 1
            }
        };
        by_content.entry(content).or_insert(group);
        by_key.entry(*key).or_insert(group);
        groups.push(group);
    }
    renumber(&groups)
}

/// Renumbers group ids densely from 0 in order of first appearance.
fn renumber(groups: &[usize]) -> Vec<usize> {
    let mut map = HashMap::new();
    groups
        .iter()
        .map(|g| {
            let n = map.len();
            *map.entry(*g).or_insert(n)
        })
        .collect()
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

    const SHARED: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/signpose/bp_hp6_dev"
    );

    #[test]
    fn reads_the_shared_prefix_with_recording_groups() {
        let data = load(Path::new(SHARED)).unwrap();
        assert_eq!(data.len(), 288);
        assert_eq!(data.frames(), 30);
        assert_eq!(data.layout, Layout::PoseHands);
        assert_eq!(data.labels.len(), 6);
        // 48 recordings a class; the Elephant duplicates merge groups.
        let distinct: std::collections::HashSet<_> = data.groups.iter().collect();
        assert!(
            distinct.len() < 288 && distinct.len() >= 280,
            "{}",
            distinct.len()
        );
    }

    #[test]
    fn reads_a_recording_folder_and_rejects_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        for (class, n) in [("Cow", 2), ("Bird", 3)] {
            std::fs::create_dir(dir.path().join(class)).unwrap();
            for i in 0..n {
                let seq = Array2::<f32>::from_elem((30, 258), i as f32);
                write_npy(dir.path().join(class).join(format!("{i}.npy")), &seq).unwrap();
            }
        }
        let data = load(dir.path()).unwrap();
        assert_eq!(data.labels, vec!["Bird", "Cow"]);
        assert_eq!(data.y, vec![0, 0, 0, 1, 1]);
        // Identical content across classes still merges: rows 0 and 3 are both zeros.
        assert_eq!(data.groups[0], data.groups[3]);

        std::fs::write(dir.path().join("Cow").join("bad.npy"), b"not numpy").unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("bad.npy"), "{err}");

        let empty = tempfile::tempdir().unwrap();
        let err = load(empty.path()).unwrap_err().to_string();
        assert!(err.contains("no sequences found"), "{err}");
        let err = load(Path::new("/nonexistent/prefix"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a data folder"), "{err}");
    }
}

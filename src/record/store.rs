//! Where takes go: `DIR/<sign>/<take>.npy` (float32, frames x features, the
//! layout's features in SignPose's order, as `signtop landmarks` writes) and
//! a sidecar `DIR/<sign>/<take>.json` (format `signtop-recording/1`). Each is
//! written to a temporary file and renamed; the sidecar first, so every
//! `.npy` a reader finds has its sidecar.

use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::keypoint_files::extract::write_npy_atomically;
use crate::landmarks::Layout;
use crate::pipeline::LandmarkedFrame;

/// The sidecar's format name.
pub const FORMAT: &str = "signtop-recording/1";

/// Errors writing or removing takes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A sign name that cannot be a folder name.
    #[error("--sign {0:?} cannot be a folder name (empty, \".\", \"..\", or has a / in it)")]
    BadSign(String),
    /// A take with no frames.
    #[error("a take of {0} has no frames")]
    Empty(String),
    /// A file or folder could not be written or removed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The keypoints could not be written.
    #[error("{0:#}")]
    Npy(anyhow::Error),
}

/// The sidecar beside each take (field names are read by the training loader).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TakeSidecar {
    /// Always [`FORMAT`].
    pub format: String,
    /// The sign (the folder's name).
    pub sign: String,
    /// Features per frame: 258 or 1662.
    pub layout: usize,
    /// Frames in the take.
    pub frames: usize,
    /// Capture time of each frame in ms, from the take's first frame.
    pub timestamps_ms: Vec<f64>,
    /// Frames per second measured over the take.
    pub fps: f64,
    /// The camera or replayed file.
    pub device: String,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// The signtop that wrote it.
    pub signtop_version: String,
}

/// A take on disk.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedTake {
    /// The sign.
    pub sign: String,
    /// The take's name (file stem), e.g. `take-003`.
    pub name: String,
    /// The keypoints file.
    pub npy: PathBuf,
    /// The sidecar.
    pub sidecar: PathBuf,
    /// Frames in it.
    pub frames: usize,
    /// First to last capture time plus one frame interval, in seconds.
    pub seconds: f64,
    /// Measured frames per second.
    pub fps: f64,
}

/// What every take's sidecar says about the source.
#[derive(Clone, Debug)]
pub struct SourceFacts {
    /// The camera or replayed file.
    pub device: String,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
}

/// The recording folder.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
    layout: Layout,
    source: SourceFacts,
}

impl Store {
    /// The folder `dir` (created if needed) for takes in `layout`.
    pub fn open(dir: &Path, layout: Layout, source: SourceFacts) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Store {
            dir: dir.to_path_buf(),
            layout,
            source,
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Checks `sign` can be a folder name.
    pub fn check_sign(sign: &str) -> Result<(), StoreError> {
        let bad = sign.trim().is_empty()
            || sign == "."
            || sign == ".."
            || sign.contains('/')
            || sign.contains('\0');
        if bad {
            Err(StoreError::BadSign(sign.to_string()))
        } else {
            Ok(())
        }
    }

    /// The sign folders already in the folder, in name order.
    pub fn existing_signs(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut signs: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|name| !name.starts_with('.'))
            .collect();
        signs.sort();
        signs
    }

    /// Takes of `sign` already on disk.
    pub fn count(&self, sign: &str) -> usize {
        self.take_numbers(sign).len()
    }

    fn take_numbers(&self, sign: &str) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir(self.dir.join(sign)) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name();
                let stem = name.to_str()?.strip_suffix(".npy")?;
                stem.strip_prefix("take-")?.parse().ok()
            })
            .collect()
    }

    /// Saves `frames` as the next take of `sign` (never over an existing one).
    pub fn save(&self, sign: &str, frames: &[LandmarkedFrame]) -> Result<SavedTake, StoreError> {
        Store::check_sign(sign)?;
        let first = frames
            .first()
            .ok_or_else(|| StoreError::Empty(sign.to_string()))?;
        let folder = self.dir.join(sign);
        std::fs::create_dir_all(&folder).map_err(|source| StoreError::Io {
            path: folder.clone(),
            source,
        })?;
        let number = self.take_numbers(sign).into_iter().max().unwrap_or(0) + 1;
        let name = format!("take-{number:03}");
        let npy = folder.join(format!("{name}.npy"));
        let sidecar_path = folder.join(format!("{name}.json"));
        let timestamps_ms: Vec<f64> = frames
            .iter()
            .map(|f| round3(f.captured.saturating_sub(first.captured).as_secs_f64() * 1000.0))
            .collect();
        let fps = measured_fps(&timestamps_ms);
        let sidecar = TakeSidecar {
            format: FORMAT.to_string(),
            sign: sign.to_string(),
            layout: self.layout.features(),
            frames: frames.len(),
            timestamps_ms,
            fps,
            device: self.source.device.clone(),
            width: self.source.width,
            height: self.source.height,
            signtop_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        write_json_atomically(&sidecar_path, &sidecar)?;
        write_npy_atomically(&npy, &self.keypoints(frames)).map_err(StoreError::Npy)?;
        let seconds = match sidecar.timestamps_ms.last() {
            Some(last) if fps > 0.0 => last / 1000.0 + 1.0 / fps,
            _ => 0.0,
        };
        Ok(SavedTake {
            sign: sign.to_string(),
            name,
            npy,
            sidecar: sidecar_path,
            frames: frames.len(),
            seconds: round3(seconds),
            fps,
        })
    }

    /// (frames, features) in the layout, one row per frame.
    fn keypoints(&self, frames: &[LandmarkedFrame]) -> Array2<f32> {
        let features = self.layout.features();
        let mut array = Array2::zeros((frames.len(), features));
        for (row, frame) in array.rows_mut().into_iter().zip(frames) {
            if let Some(row) = row.into_slice() {
                frame.keypoints.write_features(self.layout, row);
            }
        }
        array
    }

    /// Removes a take (its keypoints first, so no `.npy` is left without a sidecar).
    pub fn delete(&self, take: &SavedTake) -> Result<(), StoreError> {
        for path in [&take.npy, &take.sidecar] {
            std::fs::remove_file(path).map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// Frames per second from timestamps in ms (0 for fewer than two frames).
fn measured_fps(timestamps_ms: &[f64]) -> f64 {
    match timestamps_ms.last() {
        Some(&last) if timestamps_ms.len() > 1 && last > 0.0 => {
            round3((timestamps_ms.len() - 1) as f64 * 1000.0 / last)
        }
        _ => 0.0,
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn write_json_atomically(path: &Path, value: &TakeSidecar) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(".signtop-take-")
        .suffix(".json.part")
        .tempfile_in(dir)
        .map_err(io)?;
    let text = serde_json::to_string_pretty(value).map_err(|e| io(std::io::Error::other(e)))?;
    temp.write_all(text.as_bytes()).map_err(io)?;
    temp.write_all(b"\n").map_err(io)?;
    temp.as_file().sync_all().map_err(io)?;
    temp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landmarks::{Keypoints, Landmark};
    use std::time::Duration;

    fn frames(n: usize, interval_ms: u64) -> Vec<LandmarkedFrame> {
        (0..n)
            .map(|i| LandmarkedFrame {
                sequence: i as u64,
                captured: Duration::from_millis(5_000 + i as u64 * interval_ms),
                keypoints: Keypoints {
                    pose: Some(vec![Landmark::xyz(0.5, 0.1 * i as f32, 0.0); 33]),
                    ..Keypoints::default()
                },
            })
            .collect()
    }

    fn store(dir: &Path) -> Store {
        let source = SourceFacts {
            device: "/dev/video0".into(),
            width: 640,
            height: 480,
        };
        Store::open(dir, Layout::PoseHands, source).unwrap()
    }

    #[test]
    fn a_take_is_keypoints_and_a_sidecar_numbered_after_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir.path().join("takes"));
        let first = store.save("Cow", &frames(3, 100)).unwrap();
        assert_eq!(first.name, "take-001");
        let second = store.save("Cow", &frames(4, 50)).unwrap();
        assert_eq!(second.name, "take-002");
        assert_eq!((second.frames, second.fps, second.seconds), (4, 20.0, 0.2));

        let keypoints: Array2<f32> = ndarray_npy::read_npy(&first.npy).unwrap();
        assert_eq!(keypoints.dim(), (3, 258));
        assert_eq!(keypoints[[2, 1]], 0.2, "frame 2's first pose point y");
        let sidecar: TakeSidecar =
            serde_json::from_str(&std::fs::read_to_string(&first.sidecar).unwrap()).unwrap();
        assert_eq!(sidecar.format, FORMAT);
        assert_eq!(sidecar.timestamps_ms, vec![0.0, 100.0, 200.0]);
        assert_eq!(
            (sidecar.layout, sidecar.frames, sidecar.fps),
            (258, 3, 10.0)
        );
        assert_eq!(sidecar.device, "/dev/video0");

        // Deleting the first does not make the next one reuse a number.
        store.delete(&first).unwrap();
        assert!(!first.npy.exists() && !first.sidecar.exists());
        assert_eq!(store.save("Cow", &frames(2, 100)).unwrap().name, "take-003");
        assert_eq!(store.count("Cow"), 2);
        assert_eq!(store.existing_signs(), ["Cow"]);
        // Only finished files: no temporary ones left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path().join("takes/Cow"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    }

    #[test]
    fn bad_sign_names_and_empty_takes_are_refused() {
        for bad in ["", " ", ".", "..", "a/b"] {
            assert!(Store::check_sign(bad).is_err(), "{bad:?}");
        }
        assert!(Store::check_sign("Thank you").is_ok());
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            store(dir.path()).save("Cow", &[]),
            Err(StoreError::Empty(_))
        ));
    }
}

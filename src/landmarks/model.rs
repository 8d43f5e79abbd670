//! Loading MediaPipe's converted ONNX models on tract: each model once, with a
//! fixed NHWC float input, optimised and shared read-only.

use std::path::{Path, PathBuf};

pub use tract_linalg::multithread::Executor;
use tract_onnx::prelude::*;

/// Built-in models directory (overridable with `--models DIR`).
pub const DEFAULT_MODELS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models");

/// A tract thread pool of `threads` threads for the models run through
/// [`in_pool`] (1: no pool, the calling thread does the work). The
/// `SIGNTOP_TRACT_THREADS` variable overrides `threads`.
pub fn thread_pool(threads: usize) -> Executor {
    let threads = std::env::var("SIGNTOP_TRACT_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(threads)
        .max(1);
    if threads == 1 {
        Executor::SingleThread
    } else {
        Executor::multithread_with_name(threads, "tract")
    }
}

/// Runs `f` with tract's matrix products and large element-wise ops spread
/// over `pool`.
pub fn in_pool<R>(pool: &Executor, f: impl FnOnce() -> R) -> R {
    tract_linalg::multithread::multithread_tract_scope(pool.clone(), f)
}

/// A model file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// File missing, unreadable, or not runnable with the expected input.
    #[error("model {path}: expected an ONNX model with input f32 {shape:?}: {source}")]
    Load {
        /// The model file.
        path: PathBuf,
        /// The input shape we fix it to.
        shape: Vec<usize>,
        /// What tract said.
        source: anyhow::Error,
    },
    /// Inference failed.
    #[error("running {name}: {source}")]
    Run {
        /// Model file name.
        name: String,
        /// What tract said.
        source: anyhow::Error,
    },
}

/// An optimised, runnable model with its fixed input shape.
pub struct Model {
    name: String,
    shape: Vec<usize>,
    plan: Arc<TypedRunnableModel>,
}

impl Model {
    /// Loads `dir/file`, fixing its first input to f32 `shape`.
    pub fn load(dir: &Path, file: &str, shape: &[usize]) -> Result<Model, ModelError> {
        let path = dir.join(file);
        let err = |source: anyhow::Error| ModelError::Load {
            path: path.clone(),
            shape: shape.to_vec(),
            source,
        };
        if !path.is_file() {
            return Err(err(anyhow::anyhow!("file not found")));
        }
        let plan = tract_onnx::onnx()
            .model_for_path(&path)
            .and_then(|m| m.with_input_fact(0, f32::fact(shape).into()))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(err)?;
        Ok(Model {
            name: file.to_string(),
            shape: shape.to_vec(),
            plan,
        })
    }

    /// Input shape this model was fixed to.
    pub fn input_shape(&self) -> &[usize] {
        &self.shape
    }

    /// Runs on `input` (NHWC, len = product of the shape); returns outputs as flat f32.
    pub fn run(&self, input: &[f32]) -> Result<Vec<Vec<f32>>, ModelError> {
        let run_err = |source: anyhow::Error| ModelError::Run {
            name: self.name.clone(),
            source,
        };
        let tensor = Tensor::from_shape(&self.shape, input).map_err(&run_err)?;
        let outputs = self.plan.run(tvec!(tensor.into())).map_err(&run_err)?;
        outputs
            .iter()
            .map(|o| {
                o.to_plain_array_view::<f32>()
                    .map(|v| v.iter().copied().collect())
                    .map_err(&run_err)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_model_names_file_and_shape() {
        let e = Model::load(
            Path::new("/nonexistent"),
            "pose_detection.onnx",
            &[1, 224, 224, 3],
        )
        .err()
        .unwrap();
        let msg = e.to_string();
        assert!(
            msg.contains("pose_detection.onnx") && msg.contains("224"),
            "{msg}"
        );
    }

    #[test]
    fn converted_models_load_and_run() {
        let dir = Path::new(DEFAULT_MODELS_DIR);
        for (file, side) in [
            ("pose_detection.onnx", 224),
            ("pose_landmark_full.onnx", 256),
            ("hand_recrop.onnx", 256),
            ("hand_landmark_full.onnx", 224),
            ("face_landmark.onnx", 192),
        ] {
            let shape = [1, side, side, 3];
            let m = Model::load(dir, file, &shape).unwrap();
            let out = m.run(&vec![0.5; side * side * 3]).unwrap();
            eprintln!("{file}: {:?}", out.iter().map(Vec::len).collect::<Vec<_>>());
            assert!(!out.is_empty());
        }
    }
}

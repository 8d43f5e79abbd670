//! The sign model at runtime: an ONNX classifier run by tract, described by a
//! sidecar JSON (labels, layout, window length, preprocessing).
//!
//! `models/signs.onnx` goes with `models/signs.json`: the sidecar is the
//! model's path with the extension `.json`. The same loader serves the live
//! monitor and `signtop eval`, so evaluation measures what runs live.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tract_onnx::prelude::InferenceModel;
use tract_onnx::tract_hir::infer::Factoid;

use std::time::Duration;

use super::preprocess::Preprocessing;
use super::window::{DEFAULT_SPAN_SECONDS, Window};
use crate::landmarks::keypoints::Layout;
use crate::nn::{Model, ModelError, Rewrites};

/// This checkout's sign model: the one built into the binary (the tests
/// read it; the binary itself never looks for it).
pub const DEFAULT_SIGN_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/signs.onnx");
/// This checkout's 1662-layout sign model (face included), also built in.
pub const DEFAULT_SIGN_MODEL_1662: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/models/signs_1662.onnx");
/// The sign model built into the binary: `models/signs.onnx` when it was built.
pub const BUILT_IN_ONNX: &[u8] = include_bytes!("../../models/signs.onnx");
/// The built-in sign model's sidecar: `models/signs.json` when it was built.
pub const BUILT_IN_SIDECAR: &str = include_str!("../../models/signs.json");
/// How messages name the built-in sign model.
pub const BUILT_IN_NAME: &str = "(built in) signs.onnx";
/// The built-in 1662-layout sign model and its sidecar.
pub const BUILT_IN_ONNX_1662: &[u8] = include_bytes!("../../models/signs_1662.onnx");
/// See [`BUILT_IN_ONNX_1662`].
pub const BUILT_IN_SIDECAR_1662: &str = include_str!("../../models/signs_1662.json");
/// How messages name the built-in 1662-layout sign model.
pub const BUILT_IN_NAME_1662: &str = "(built in) signs_1662.onnx";
/// Longest window a sidecar may ask for.
const MAX_SPAN_SECONDS: f64 = 60.0;
/// The `format` value every sidecar carries.
pub const SIDECAR_FORMAT: &str = "signtop-sign-model/1";

/// Errors loading or running a sign model.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    /// The sidecar JSON is missing or unreadable.
    #[error("sign model {model}: reading its sidecar {path}")]
    SidecarRead {
        /// The model path.
        model: PathBuf,
        /// The sidecar path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The sidecar JSON does not describe a sign model.
    #[error("sign model sidecar {path}: {message}")]
    SidecarInvalid {
        /// The sidecar path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// tract cannot load the ONNX file.
    #[error("sign model {path}: not a loadable ONNX model")]
    Onnx {
        /// The model path.
        path: PathBuf,
        /// What tract said.
        source: anyhow::Error,
    },
    /// The ONNX input does not take the sidecar's (frames, features).
    #[error(
        "sign model {path}: its input is {found}, but the sidecar says {frames} frames of {layout}-layout keypoints"
    )]
    InputShape {
        /// The model path.
        path: PathBuf,
        /// The input fact found in the ONNX file.
        found: String,
        /// Frames per window per the sidecar.
        frames: usize,
        /// Layout per the sidecar.
        layout: Layout,
    },
    /// The number of labels does not match the model's outputs.
    #[error(
        "sign model {path}: {labels} labels in the sidecar but the model has {outputs} outputs"
    )]
    LabelCount {
        /// The model path.
        path: PathBuf,
        /// Labels in the sidecar.
        labels: usize,
        /// Output width of the model.
        outputs: String,
    },
    /// The window holds another layout or is not full.
    #[error("the sign model wants a full window of {frames} frames in layout {layout}; got {got}")]
    Window {
        /// Frames the model reads.
        frames: usize,
        /// Layout the model reads.
        layout: Layout,
        /// What it got.
        got: String,
    },
    /// Inference failed.
    #[error("running the sign model")]
    Run(#[source] anyhow::Error),
}

/// What the sidecar JSON next to a sign model says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sidecar {
    /// Always [`SIDECAR_FORMAT`].
    pub format: String,
    /// Class names, in output order.
    pub labels: Vec<String>,
    /// Features per frame (258 or 1662).
    pub features: usize,
    /// Frames per window.
    pub frames: usize,
    /// Preprocessing applied to each window before the model.
    pub preprocessing: Preprocessing,
    /// Seconds a window covers (its frames are spread evenly over it); absent
    /// in older sidecars, which mean [`DEFAULT_SPAN_SECONDS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_seconds: Option<f64>,
    /// Name of the ONNX input, shape (batch, frames, features).
    pub input: String,
    /// Name of the ONNX output: probabilities, shape (batch, classes).
    pub output: String,
}

impl Sidecar {
    /// The sidecar path for a model path: same name, extension `.json`.
    pub fn path_for(model: &Path) -> PathBuf {
        model.with_extension("json")
    }

    /// Reads and checks the sidecar of `model`.
    pub fn load_for(model: &Path) -> Result<Sidecar, ClassifyError> {
        let path = Sidecar::path_for(model);
        let text = std::fs::read_to_string(&path).map_err(|source| ClassifyError::SidecarRead {
            model: model.to_path_buf(),
            path: path.clone(),
            source,
        })?;
        Sidecar::from_json(&text, &path)
    }

    /// Parses and checks a sidecar's JSON text; `path` names it in messages.
    pub fn from_json(text: &str, path: &Path) -> Result<Sidecar, ClassifyError> {
        let invalid = |message: String| ClassifyError::SidecarInvalid {
            path: path.to_path_buf(),
            message,
        };
        let sidecar: Sidecar = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if sidecar.format != SIDECAR_FORMAT {
            return Err(invalid(format!(
                "format is {:?}, expected {SIDECAR_FORMAT:?}",
                sidecar.format
            )));
        }
        sidecar.layout().map_err(|e| invalid(e.to_string()))?;
        if sidecar.labels.len() < 2 || sidecar.frames == 0 {
            return Err(invalid(
                "needs at least two labels and one frame".to_string(),
            ));
        }
        if let Some(span) = sidecar.span_seconds
            && !(span.is_finite() && span > 0.0 && span <= MAX_SPAN_SECONDS)
        {
            return Err(invalid(format!(
                "span_seconds {span} must be above 0 and at most {MAX_SPAN_SECONDS}"
            )));
        }
        Ok(sidecar)
    }

    /// Seconds a window covers.
    pub fn span(&self) -> Duration {
        Duration::from_secs_f64(self.span_seconds.unwrap_or(DEFAULT_SPAN_SECONDS))
    }

    /// The keypoint layout.
    pub fn layout(&self) -> Result<Layout, crate::landmarks::keypoints::LayoutError> {
        Layout::from_features(self.features)
    }

    /// Writes the sidecar of `model`.
    pub fn save_for(&self, model: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(Sidecar::path_for(model), json + "\n")
    }
}

/// A loaded, optimised sign classifier.
pub struct SignModel {
    sidecar: Sidecar,
    layout: Layout,
    model: Model,
}

impl std::fmt::Debug for SignModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignModel")
            .field("sidecar", &self.sidecar)
            .finish_non_exhaustive()
    }
}

impl SignModel {
    /// Loads `path` (ONNX) and its sidecar, checks they agree, optimises for batch 1.
    pub fn load(path: &Path) -> Result<SignModel, ClassifyError> {
        let sidecar = Sidecar::load_for(path)?;
        let onnx = std::fs::read(path).map_err(|e| onnx_error(path, e.into()))?;
        SignModel::prepare(path, sidecar, &onnx)
    }

    /// The sign model built into the binary for `layout` ([`BUILT_IN_ONNX`] and
    /// [`BUILT_IN_SIDECAR`], or their 1662 twins).
    pub fn built_in(layout: Layout) -> Result<SignModel, ClassifyError> {
        match layout {
            Layout::PoseHands => {
                SignModel::from_bytes(Path::new(BUILT_IN_NAME), BUILT_IN_ONNX, BUILT_IN_SIDECAR)
            }
            Layout::PoseFaceHands => SignModel::from_bytes(
                Path::new(BUILT_IN_NAME_1662),
                BUILT_IN_ONNX_1662,
                BUILT_IN_SIDECAR_1662,
            ),
        }
    }

    /// [`SignModel::load`] from an ONNX file's bytes and its sidecar's JSON;
    /// `name` stands for the model's path in messages.
    pub fn from_bytes(name: &Path, onnx: &[u8], sidecar: &str) -> Result<SignModel, ClassifyError> {
        let sidecar = Sidecar::from_json(sidecar, &Sidecar::path_for(name))?;
        SignModel::prepare(name, sidecar, onnx)
    }

    /// Checks the ONNX graph against its sidecar and optimises it for batch 1.
    fn prepare(path: &Path, sidecar: Sidecar, onnx: &[u8]) -> Result<SignModel, ClassifyError> {
        let layout = sidecar
            .layout()
            .map_err(|e| ClassifyError::SidecarInvalid {
                path: Sidecar::path_for(path),
                message: e.to_string(),
            })?;
        let shape = [
            1,
            sidecar.frames,
            sidecar.preprocessing.model_features(layout),
        ];
        let onnx_err = |e: ModelError| onnx_error(path, e.into_cause());
        let graph = Model::parse(path, onnx, &shape).map_err(onnx_err)?;
        check_input(path, &graph, &sidecar, layout)?;
        let model =
            Model::from_graph(path, graph, &shape, Rewrites::TractOnly).map_err(onnx_err)?;
        check_output(path, &model, sidecar.labels.len())?;
        Ok(SignModel {
            sidecar,
            layout,
            model,
        })
    }

    /// Class names, in output order.
    pub fn labels(&self) -> &[String] {
        &self.sidecar.labels
    }

    /// The keypoint layout the model reads.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Frames per window.
    pub fn frames(&self) -> usize {
        self.sidecar.frames
    }

    /// An empty live window for this model: its frames over its span.
    pub fn window(&self) -> Window {
        Window::new(self.layout, self.sidecar.frames, self.sidecar.span())
    }

    /// The sidecar description.
    pub fn sidecar(&self) -> &Sidecar {
        &self.sidecar
    }

    /// Class probabilities for a window of raw (unpreprocessed) keypoints:
    /// frames x features of the model's layout, row-major.
    pub fn predict_raw(&self, frames: &[f32]) -> Result<Vec<f32>, ClassifyError> {
        let expected = self.sidecar.frames * self.sidecar.features;
        if frames.len() != expected {
            return Err(self.window_error(format!("{} values", frames.len())));
        }
        let input = self.sidecar.preprocessing.apply_window(self.layout, frames);
        let outputs = self
            .model
            .run(&input)
            .map_err(|e| ClassifyError::Run(e.into_cause()))?;
        outputs
            .into_iter()
            .next()
            .ok_or_else(|| ClassifyError::Run(anyhow::anyhow!("the model gave no output")))
    }

    fn window_error(&self, got: String) -> ClassifyError {
        ClassifyError::Window {
            frames: self.sidecar.frames,
            layout: self.layout,
            got,
        }
    }
}

/// tract could not load or optimise the model at `path`.
fn onnx_error(path: &Path, source: anyhow::Error) -> ClassifyError {
    ClassifyError::Onnx {
        path: path.to_path_buf(),
        source,
    }
}

/// The ONNX input must be (batch, frames, features) with the sidecar's sizes.
fn check_input(
    path: &Path,
    model: &InferenceModel,
    sidecar: &Sidecar,
    layout: Layout,
) -> Result<(), ClassifyError> {
    let mismatch = |found: String| ClassifyError::InputShape {
        path: path.to_path_buf(),
        found,
        frames: sidecar.frames,
        layout,
    };
    let fact = model
        .input_fact(0)
        .map_err(|e| mismatch(format!("unreadable ({e})")))?;
    if fact.shape.is_open() {
        return Ok(());
    }
    let dims: Vec<Option<usize>> = fact
        .shape
        .dims()
        .map(|d| {
            d.concretize()
                .and_then(|d| d.as_i64().and_then(|v| usize::try_from(v).ok()))
        })
        .collect();
    let width = sidecar.preprocessing.model_features(layout);
    let fits = dims.len() == 3
        && dims[1].is_none_or(|d| d == sidecar.frames)
        && dims[2].is_none_or(|d| d == width);
    if fits {
        Ok(())
    } else {
        Err(mismatch(format!("{:?}", fact.shape)))
    }
}

/// The optimised model must output (1, labels).
fn check_output(path: &Path, model: &Model, labels: usize) -> Result<(), ClassifyError> {
    match model.output_shape(0) {
        Some(shape) if shape.last() == Some(&labels) => Ok(()),
        shape => Err(ClassifyError::LabelCount {
            path: path.to_path_buf(),
            labels,
            outputs: format!("{shape:?}"),
        }),
    }
}

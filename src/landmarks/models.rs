//! The landmark models: MediaPipe's six converted ONNX files, built into the
//! binary or read from a folder, each loaded on [`crate::nn`] in the channel
//! order that runs it fastest.

use std::path::{Path, PathBuf};

use crate::nn::model::{ChannelOrder, Model, ModelError, Rewrites, load_error};

/// This checkout's `models/` folder: what the binary has built in (the tests
/// read it; the binary itself never looks for it).
pub const DEFAULT_MODELS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models");

/// The landmark models built into the binary: `models/` when it was built,
/// so a copied or installed binary needs no files beside it.
const BUILT_IN: [(&str, &[u8]); 6] = [
    (
        "pose_detection.onnx",
        include_bytes!("../../models/pose_detection.onnx"),
    ),
    (
        "pose_landmark_full.onnx",
        include_bytes!("../../models/pose_landmark_full.onnx"),
    ),
    (
        "hand_recrop.onnx",
        include_bytes!("../../models/hand_recrop.onnx"),
    ),
    (
        "hand_landmark_full.onnx",
        include_bytes!("../../models/hand_landmark_full.onnx"),
    ),
    (
        "face_detection_short_range.onnx",
        include_bytes!("../../models/face_detection_short_range.onnx"),
    ),
    (
        "face_landmark.onnx",
        include_bytes!("../../models/face_landmark.onnx"),
    ),
];

/// Where the landmark models are read from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ModelSource {
    /// The models built into the binary.
    #[default]
    BuiltIn,
    /// A folder holding ONNX files of the same names (`--models DIR`).
    Dir(PathBuf),
}

impl ModelSource {
    /// A folder when one is given, else the built-in models.
    pub fn dir_or_built_in(dir: Option<PathBuf>) -> ModelSource {
        dir.map_or(ModelSource::BuiltIn, ModelSource::Dir)
    }

    /// The model named `file`, as it is called in messages.
    pub fn path_of(&self, file: &str) -> PathBuf {
        match self {
            ModelSource::BuiltIn => Path::new("(built in)").join(file),
            ModelSource::Dir(dir) => dir.join(file),
        }
    }

    /// The bytes of the model named `file`.
    pub fn read(&self, file: &str) -> std::io::Result<std::borrow::Cow<'static, [u8]>> {
        match self {
            ModelSource::BuiltIn => BUILT_IN
                .iter()
                .find(|(name, _)| *name == file)
                .map(|(_, bytes)| std::borrow::Cow::Borrowed(*bytes))
                .ok_or_else(|| std::io::Error::other("no built-in model of that name")),
            ModelSource::Dir(dir) => std::fs::read(dir.join(file)).map(std::borrow::Cow::Owned),
        }
    }
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSource::BuiltIn => f.write_str("the built-in models"),
            ModelSource::Dir(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// Loads the landmark model `file` from `models`, its input fixed to f32
/// `shape`, on signtop's ops in the faster channel order for it
/// ([`channel_order`]).
pub fn load(models: &ModelSource, file: &str, shape: &[usize]) -> Result<Model, ModelError> {
    load_with(models, file, shape, channel_order(file))
}

/// [`load`] with the depthwise convolutions and resizes in `layout`.
pub fn load_with(
    models: &ModelSource,
    file: &str,
    shape: &[usize],
    layout: ChannelOrder,
) -> Result<Model, ModelError> {
    let (path, bytes) = read(models, file, shape)?;
    Model::load(&path, &bytes, shape, Rewrites::SigntopOps(layout))
}

/// Multiply-adds of one run of the landmark model `file` with input f32
/// `shape` ([`crate::nn::model::multiply_adds`]).
pub fn multiply_adds(models: &ModelSource, file: &str, shape: &[usize]) -> Result<u64, ModelError> {
    let (path, bytes) = read(models, file, shape)?;
    crate::nn::model::multiply_adds(&path, &bytes, shape)
}

/// The model `file`'s name in messages and its bytes; a file that cannot be
/// read is a load error for input f32 `shape`.
fn read(
    models: &ModelSource,
    file: &str,
    shape: &[usize],
) -> Result<(PathBuf, std::borrow::Cow<'static, [u8]>), ModelError> {
    let path = models.path_of(file);
    match models.read(file) {
        Ok(bytes) => Ok((path, bytes)),
        Err(e) => {
            let cause = match e.kind() {
                std::io::ErrorKind::NotFound => anyhow::anyhow!("file not found"),
                _ => e.into(),
            };
            Err(load_error(&path, shape, cause))
        }
    }
}

/// The faster order for one of `models/`' files, as measured per model
/// (`signtop bench --models`, ms p50, as loaded -> channels last; the first
/// three on one thread, before signtop's own ops): pose_landmark_full ~30 ->
/// ~17, hand_landmark_full ~21 -> ~13, pose_detection ~31 -> ~17. With
/// signtop's depthwise and PReLU ops, on the landmark threads, interleaved:
/// face_detection_short_range 2.54-2.62 -> 2.17-2.23, face_landmark 2.97-3.20
/// -> 2.48-2.73. With their pools and pads channels last too, and signtop's
/// axis moves: face_detection_short_range 1.94 -> 1.12, face_landmark 2.33 ->
/// 1.26; hand_recrop 1.49 -> 1.20, its first convolution kept channels first
/// on tract's direct kernel (moved, it would sum in another order).
pub fn channel_order(file: &str) -> ChannelOrder {
    match file {
        "hand_recrop.onnx" | "face_detection_short_range.onnx" | "face_landmark.onnx" => {
            ChannelOrder::ChannelsLastThroughout
        }
        _ => ChannelOrder::ChannelsLast,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_models_are_those_of_the_models_folder() {
        for (file, _) in BUILT_IN {
            let built_in = ModelSource::BuiltIn.read(file).unwrap();
            let on_disk = std::fs::read(Path::new(DEFAULT_MODELS_DIR).join(file)).unwrap();
            assert!(built_in.as_ref() == on_disk.as_slice(), "{file}");
        }
        let err = ModelSource::BuiltIn.read("nothing.onnx").unwrap_err();
        assert!(err.to_string().contains("no built-in model"), "{err}");
    }

    #[test]
    fn missing_model_names_file_and_shape() {
        let e = load(
            &ModelSource::Dir("/nonexistent".into()),
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
        for (file, side) in [
            ("pose_detection.onnx", 224),
            ("pose_landmark_full.onnx", 256),
            ("hand_recrop.onnx", 256),
            ("hand_landmark_full.onnx", 224),
            ("face_landmark.onnx", 192),
        ] {
            let m = load(
                &ModelSource::Dir(DEFAULT_MODELS_DIR.into()),
                file,
                &[1, side, side, 3],
            )
            .unwrap();
            let out = m.run(&vec![0.5; side * side * 3]).unwrap();
            eprintln!("{file}: {:?}", out.iter().map(Vec::len).collect::<Vec<_>>());
            assert!(!out.is_empty());
        }
    }
}

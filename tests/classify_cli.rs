//! `signtop train` / `signtop eval` end to end on real SignPose data, the
//! shipped sign model, and the errors for bad models and data.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

mod common;

use assert_cmd::Command;
use common::system::{self, FONTS_DEJAVU};
use ndarray::{Array3, Axis};
use ndarray_npy::{read_npy, write_npy};
use predicates::prelude::*;
use signtop::classify::{SignModel, Window};
use signtop::landmarks::keypoints::Layout;

const SHARED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/signpose/bp_hp6_dev"
);
const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/signs.onnx");

fn signtop() -> Command {
    Command::cargo_bin("signtop").unwrap()
}

/// A recording folder with `per_class` real sequences of the first `classes` classes.
fn recording_folder(dir: &Path, classes: usize, per_class: usize) {
    let x: Array3<f32> = read_npy(format!("{SHARED}_X.npy")).unwrap();
    let y: ndarray::Array1<u8> = read_npy(format!("{SHARED}_y.npy")).unwrap();
    let names = [
        "Bird",
        "Butterfly",
        "Cow",
        "Elephant",
        "Gorilla",
        "No Action",
    ];
    for (class, name) in names.iter().enumerate().take(classes) {
        let folder = dir.join(name);
        std::fs::create_dir_all(&folder).unwrap();
        let rows = y
            .iter()
            .enumerate()
            .filter(|(_, c)| usize::from(**c) == class);
        for (n, (row, _)) in rows.take(per_class).enumerate() {
            let seq = x.index_axis(Axis(0), row).to_owned();
            write_npy(folder.join(format!("{n:03}.npy")), &seq).unwrap();
        }
    }
}

#[test]
fn train_exports_a_model_tract_agrees_with_and_eval_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    recording_folder(&data, 3, 6);
    let model = dir.path().join("out/tiny.onnx");
    // `train` itself fails when tract's output differs from candle's by >= 1e-4.
    signtop()
        .args([
            "train",
            "--epochs",
            "3",
            "--val-split",
            "0.2",
            "--seed",
            "5",
        ])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&model)
        .assert()
        .success()
        .stdout(predicate::str::contains("tract vs candle max |diff|"));
    for file in ["tiny.onnx", "tiny.json", "tiny.train.json"] {
        assert!(dir.path().join("out").join(file).is_file(), "{file}");
    }
    let loaded = SignModel::load(&model).unwrap();
    assert_eq!(loaded.labels(), ["Bird", "Butterfly", "Cow"]);
    let plots = dir.path().join("plots");
    system::require(&[FONTS_DEJAVU]);
    signtop()
        .arg("eval")
        .arg("--data")
        .arg(&data)
        .arg("--model")
        .arg(&model)
        .arg("--plots")
        .arg(&plots)
        .assert()
        .success()
        .stdout(predicate::str::contains("accuracy"))
        .stdout(predicate::str::contains("confusion matrix"));
    for png in ["confusion_matrix.png", "accuracy.png", "loss.png"] {
        let img = image::open(plots.join(png)).unwrap();
        assert!(img.width() > 100, "{png}");
    }
}

#[test]
fn the_shipped_model_reads_windows_and_scores_the_dev_data() {
    let model = SignModel::load(Path::new(SHIPPED)).unwrap();
    assert_eq!(model.layout(), Layout::PoseHands);
    assert_eq!(model.labels().len(), 6);
    let mut window = Window::with_default_len(Layout::PoseHands);
    assert!(
        model.predict(&window).is_err(),
        "an empty window is refused"
    );
    let x: Array3<f32> = read_npy(format!("{SHARED}_X.npy")).unwrap();
    for frame in x.index_axis(Axis(0), 0).outer_iter() {
        window.push_features(frame.as_slice().unwrap()).unwrap();
    }
    let p = model.predict(&window).unwrap();
    assert_eq!(p.len(), 6);
    assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    signtop()
        .args(["eval", "--data", SHARED])
        .assert()
        .success()
        .stdout(predicate::str::contains("accuracy"));
}

#[test]
fn the_built_in_model_is_the_shipped_one() {
    let built_in = SignModel::built_in().unwrap();
    let shipped = SignModel::load(Path::new(SHIPPED)).unwrap();
    assert_eq!(built_in.sidecar(), shipped.sidecar());
    let x: Array3<f32> = read_npy(format!("{SHARED}_X.npy")).unwrap();
    let first = x.index_axis(Axis(0), 0);
    let frames = first.as_standard_layout();
    let frames = frames.as_slice().unwrap();
    assert_eq!(
        built_in.predict_raw(frames).unwrap(),
        shipped.predict_raw(frames).unwrap()
    );
}

fn copy_shipped(dir: &Path) -> PathBuf {
    let model = dir.join("m.onnx");
    std::fs::copy(SHIPPED, &model).unwrap();
    std::fs::copy(
        Path::new(SHIPPED).with_extension("json"),
        dir.join("m.json"),
    )
    .unwrap();
    model
}

fn edit_sidecar(model: &Path, from: &str, to: &str) {
    let path = model.with_extension("json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{text}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

fn eval_error(model: &Path, data: &str) -> String {
    let out = signtop()
        .arg("eval")
        .arg("--model")
        .arg(model)
        .args(["--data", data])
        .assert()
        .failure()
        .get_output()
        .clone();
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn bad_models_and_data_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let model = copy_shipped(dir.path());
    edit_sidecar(&model, "\"features\": 258", "\"features\": 1662");
    let err = eval_error(&model, SHARED);
    assert!(
        err.contains("its input is") && err.contains("1662"),
        "{err}"
    );

    let model = copy_shipped(dir.path());
    edit_sidecar(&model, "\"Bird\",", "");
    let err = eval_error(&model, SHARED);
    assert!(err.contains("5 labels") && err.contains("outputs"), "{err}");

    let model = copy_shipped(dir.path());
    std::fs::remove_file(model.with_extension("json")).unwrap();
    let err = eval_error(&model, SHARED);
    assert!(err.contains("sidecar") && err.contains("m.json"), "{err}");

    let model = copy_shipped(dir.path());
    std::fs::write(&model, b"not an onnx file").unwrap();
    let err = eval_error(&model, SHARED);
    assert!(err.contains("not a loadable ONNX model"), "{err}");

    let shipped = PathBuf::from(SHIPPED);
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = eval_error(&shipped, empty.to_str().unwrap());
    assert!(err.contains("no sequences found"), "{err}");

    let corrupt = dir.path().join("corrupt/Cow");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(corrupt.join("1.npy"), b"\x93NUMPY garbage").unwrap();
    let err = eval_error(&shipped, dir.path().join("corrupt").to_str().unwrap());
    assert!(err.contains("1.npy"), "{err}");
}

/// The shipped model on MediaPipe's own keypoints of a shared clip (a screen
/// recording of another session than the training data) through the live path,
/// `Window` -> `SignModel::predict`: the sign shown wins the most windows.
/// Measured 2026-11-25: cow_correct Cow 13 of 18 windows (Bird 4, Elephant 1).
/// butterfly_inference is NOT recognised (No Action 9 of 11, Elephant 2): its
/// 40 frames give 11 windows, most of them before or around the sign; it is
/// printed, not asserted, until the model generalises to it.
#[test]
fn the_shipped_model_recognises_the_cow_clip_from_mediapipe_keypoints() {
    let model = SignModel::load(Path::new(SHIPPED)).unwrap();
    let reference = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/media/reference");
    for (clip, sign) in [("cow_correct", Some("Cow")), ("butterfly_inference", None)] {
        let frames: ndarray::Array2<f32> = read_npy(format!("{reference}/{clip}_258.npy")).unwrap();
        let mut window = Window::with_default_len(Layout::PoseHands);
        let mut votes = vec![0usize; model.labels().len()];
        for frame in frames.outer_iter() {
            window.push_features(frame.as_slice().unwrap()).unwrap();
            if window.is_full() {
                let p = model.predict(&window).unwrap();
                let best = (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
                votes[best] += 1;
            }
        }
        let winner = (0..votes.len()).max_by_key(|&i| votes[i]).unwrap();
        println!("{clip}: votes {votes:?} over {:?}", model.labels());
        if let Some(sign) = sign {
            assert_eq!(model.labels()[winner], sign, "{clip}: votes {votes:?}");
        }
    }
}

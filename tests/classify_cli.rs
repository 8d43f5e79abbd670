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
use signtop::classify::SignModel;
use signtop::landmarks::keypoints::Layout;

const SHARED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/signpose/bp_hp6_dev"
);
const FM5: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/signpose/fm5_dev"
);
const REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/media/reference");
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
    // `train` itself fails when tract's output differs from candle's by >= 1e-4:
    // here SignPose's LSTM (the default network's export is checked below).
    signtop()
        .args([
            "train",
            "--arch",
            "lstm",
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
fn the_shipped_model_reads_windows_and_scores_several_sources_each_on_its_own_line() {
    let model = SignModel::load(Path::new(SHIPPED)).unwrap();
    assert_eq!(model.layout(), Layout::PoseHands);
    assert_eq!(
        model.labels(),
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
    assert!(
        model.predict_raw(&[0.0; 258]).is_err(),
        "one frame is refused"
    );
    let x: Array3<f32> = read_npy(format!("{SHARED}_X.npy")).unwrap();
    let window: Vec<f32> = x.index_axis(Axis(0), 0).iter().copied().collect();
    let p = model.predict_raw(&window).unwrap();
    assert_eq!(p.len(), 7);
    assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    // fm5 is 1662-layout: cut to 258 for this model.
    signtop()
        .args(["eval", "--data", SHARED, FM5])
        .assert()
        .success()
        .stdout(predicate::str::contains("bp_hp6_dev: "))
        .stdout(predicate::str::contains("fm5_dev: "))
        .stdout(predicate::str::contains("total: "))
        .stdout(predicate::str::contains("ms per window"));
}

/// A 258-layout recording of `frames` frames in which nothing was found.
fn write_zero_recording(path: &Path, frames: usize) {
    write_npy(path, &ndarray::Array2::<f32>::zeros((frames, 258))).unwrap();
}

/// A folder holding one clip's keypoints as one recording of `sign`.
fn clip_folder(dir: &Path, keypoints: &Path, sign: &str) -> PathBuf {
    let folder = dir.join(sign);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(keypoints, folder.join("clip.npy")).unwrap();
    dir.to_path_buf()
}

/// The shipped model on MediaPipe's own keypoints of both shared clips
/// (screen recordings of a session the model was not trained on, at 10 frames
/// a second): every 30-frame window scored by `eval`, the goal being 90%.
/// Measured when it was trained (models/README.md): 18 of 18 and 11 of 11.
#[test]
fn the_shipped_model_recognises_most_windows_of_both_clips() {
    let dir = tempfile::tempdir().unwrap();
    for (clip, sign) in [("cow_correct", "Cow"), ("butterfly_inference", "Butterfly")] {
        let data = clip_folder(
            &dir.path().join(clip),
            &PathBuf::from(format!("{REFERENCE}/{clip}_258.npy")),
            sign,
        );
        // The built-in model: no --model.
        let percent = window_accuracy(None, &data);
        assert!(percent >= 90.0, "{clip}: {percent}% of windows");
    }
}

#[test]
fn train_reports_other_sessions_and_reads_recordings_of_any_length() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    recording_folder(&data, 3, 4);
    // One longer recording: two SignPose rows end to end (60 frames, 31 windows).
    let x: Array3<f32> = read_npy(format!("{SHARED}_X.npy")).unwrap();
    let long = ndarray::concatenate(
        Axis(0),
        &[x.index_axis(Axis(0), 0), x.index_axis(Axis(0), 1)],
    )
    .unwrap();
    write_npy(data.join("Bird/long.npy"), &long).unwrap();
    let model = dir.path().join("m.onnx");
    signtop()
        .args(["train", "--epochs", "2", "--val-split", "0"])
        .arg("--data")
        .arg(&data)
        .args(["--test-data", FM5])
        .arg("--out")
        .arg(&model)
        .assert()
        .success()
        .stdout(predicate::str::contains("tested on other data"))
        .stdout(predicate::str::contains("fm5_dev: "))
        .stdout(predicate::str::contains(
            "skipped, not classes of the model: Alligator (48), Elephant (48), Gorilla (48)",
        ));
    signtop()
        .arg("eval")
        .arg("--data")
        .arg(&data)
        .arg("--model")
        .arg(&model)
        .assert()
        .success()
        .stdout(predicate::str::contains("of 43 windows (13 recordings)"));

    // Adapting it to takes of a new sign adds a class after the model's own.
    let takes = dir.path().join("takes");
    recording_folder(&takes, 4, 3);
    std::fs::remove_dir_all(takes.join("Bird")).unwrap();
    let adapted = dir.path().join("adapted.onnx");
    signtop()
        .args(["train", "--epochs", "2", "--val-split", "0", "--takes", "2"])
        .arg("--from")
        .arg(&model)
        .arg("--data")
        .arg(&takes)
        .arg("--out")
        .arg(&adapted)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "adding 1 class(es) to the model's 3: Elephant",
        ))
        .stdout(predicate::str::contains(
            "training on 6 recordings, scoring the other 3",
        ))
        .stdout(predicate::str::contains("of 3 windows (3 recordings)"));
    let loaded = SignModel::load(&adapted).unwrap();
    assert_eq!(loaded.labels(), ["Bird", "Butterfly", "Cow", "Elephant"]);

    // A recording shorter than the window is an error naming it.
    write_zero_recording(&data.join("Cow/short.npy"), 12);
    let err = eval_error(&model, data.to_str().unwrap());
    assert!(
        err.contains("short.npy") && err.contains("shorter than"),
        "{err}"
    );
}

#[test]
fn a_new_sign_adapts_the_built_in_model_without_a_models_folder() {
    let dir = tempfile::tempdir().unwrap();
    let takes = dir.path().join("takes");
    recording_folder(&takes, 2, 3);
    std::fs::rename(takes.join("Butterfly"), takes.join("Hello")).unwrap();
    let adapted = dir.path().join("mine.onnx");
    signtop()
        .current_dir(dir.path())
        .args([
            "train",
            "--epochs",
            "1",
            "--val-split",
            "0",
            "--from",
            "built-in",
        ])
        .arg("--data")
        .arg(&takes)
        .arg("--out")
        .arg(&adapted)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "adding 1 class(es) to the model's 7: Hello",
        ));
    let built_in = SignModel::built_in(Layout::PoseHands).unwrap();
    let loaded = SignModel::load(&adapted).unwrap();
    assert_eq!(&loaded.labels()[..7], built_in.labels());
    assert_eq!(loaded.labels()[7], "Hello");
}

#[test]
fn the_built_in_model_is_the_shipped_one() {
    let built_in = SignModel::built_in(Layout::PoseHands).unwrap();
    let shipped = SignModel::load(Path::new(SHIPPED)).unwrap();
    assert_eq!(built_in.sidecar(), shipped.sidecar());
    let twin = SignModel::built_in(Layout::PoseFaceHands).unwrap();
    assert_eq!(twin.layout(), Layout::PoseFaceHands);
    assert_eq!(twin.labels(), shipped.labels());
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
    assert!(err.contains("6 labels") && err.contains("outputs"), "{err}");

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
    assert!(err.contains("no recordings found"), "{err}");

    // Classes none of which the model knows.
    let strange = dir.path().join("strange");
    std::fs::create_dir_all(strange.join("Zebra")).unwrap();
    write_zero_recording(&strange.join("Zebra/1.npy"), 30);
    let err = eval_error(&shipped, strange.to_str().unwrap());
    assert!(
        err.contains("Zebra") && err.contains("none of its classes"),
        "{err}"
    );

    let corrupt = dir.path().join("corrupt/Cow");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(corrupt.join("1.npy"), b"\x93NUMPY garbage").unwrap();
    let err = eval_error(&shipped, dir.path().join("corrupt").to_str().unwrap());
    assert!(err.contains("1.npy"), "{err}");
}

/// The shipped model's recipe (models/README.md) run again. Training is
/// seeded end to end (weights, windows, augmentation, dropout) and nothing
/// else enters it, so on the machine that made the shipped model it gives
/// that model to the byte. On another CPU the floating-point rounding of the
/// training's matrix products can differ (seen on an AMD EPYC against the
/// Intel machine that made it), and 120 epochs carry that into every weight:
/// there the retrained model, with the same sidecar, must recognise the
/// shared clips (a session it was not trained on) as the shipped one must.
#[test]
fn the_shipped_recipe_gives_the_shipped_model_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("signs.onnx");
    signtop()
        .args(["train", "--data", SHARED, FM5])
        .args(["--val-split", "0", "--epochs", "120", "--seed", "42"])
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(out.with_extension("json")).unwrap(),
        std::fs::read_to_string(Path::new(SHIPPED).with_extension("json")).unwrap()
    );
    if std::fs::read(&out).unwrap() == std::fs::read(SHIPPED).unwrap() {
        return;
    }
    for (clip, sign) in [("cow_correct", "Cow"), ("butterfly_inference", "Butterfly")] {
        let data = clip_folder(
            &dir.path().join(clip),
            &PathBuf::from(format!("{REFERENCE}/{clip}_258.npy")),
            sign,
        );
        let percent = |model: &Path| window_accuracy(Some(model), &data);
        let (retrained, shipped) = (percent(&out), percent(Path::new(SHIPPED)));
        eprintln!(
            "{clip}: the retrained model (its bytes not the shipped one's: another CPU's \
             rounding) {retrained}% of windows, the shipped one {shipped}%"
        );
        assert!(
            retrained >= 90.0,
            "{clip}: {retrained}% (shipped {shipped}%)"
        );
    }
}

/// `eval`'s share of windows of `data` that `model` (the built-in one for
/// `None`) recognises, in percent.
fn window_accuracy(model: Option<&Path>, data: &Path) -> f64 {
    let mut eval = signtop();
    eval.arg("eval");
    if let Some(model) = model {
        eval.arg("--model").arg(model);
    }
    let out = eval
        .arg("--data")
        .arg(data)
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout.lines().find_map(|l| l.strip_prefix("accuracy "));
    let percent = line.and_then(|l| l.trim().strip_suffix('%'));
    percent
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"))
}

//! Training data as `signtop train` and `eval` read it from disk: a recording
//! folder (two classes, one .npy each, the first with a recording sidecar
//! `r.json` as `signtop record` writes) and a SignPose prefix (X, y, JSON),
//! their bytes from the input, must load or give an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signtop::train::data;

fuzz_target!(|input: (&[u8], &[u8], &[u8], &str)| {
    let (first, second, labels, json) = input;
    let Ok(dir) = tempfile::tempdir() else { return };
    let root = dir.path();
    // DIR/<class>/<recording>.npy
    let folder = root.join("recordings");
    for (class, bytes) in [("A", first), ("B", second)] {
        let class_dir = folder.join(class);
        if std::fs::create_dir_all(&class_dir).is_err()
            || std::fs::write(class_dir.join("r.npy"), bytes).is_err()
        {
            return;
        }
    }
    // The recording sidecar (frame times) beside the first class's recording.
    if std::fs::write(folder.join("A").join("r.json"), json.as_bytes()).is_err() {
        return;
    }
    let _ = data::load(&folder);
    // PREFIX_X.npy, PREFIX_y.npy, PREFIX.json
    let prefix = root.join("set");
    let files = [
        ("set_X.npy", first),
        ("set_y.npy", labels),
        ("set.json", json.as_bytes()),
    ];
    if files
        .iter()
        .all(|(name, bytes)| std::fs::write(root.join(name), bytes).is_ok())
    {
        let _ = data::load(&prefix);
    }
});

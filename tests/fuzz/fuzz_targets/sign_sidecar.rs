//! The sign model's sidecar JSON: any text is a checked sidecar or an error.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use signtop::classify::Sidecar;

fuzz_target!(|text: &str| {
    if let Ok(sidecar) = Sidecar::from_json(text, Path::new("fuzz.json")) {
        assert!(sidecar.labels.len() >= 2 && sidecar.frames > 0);
        assert!(sidecar.layout().is_ok());
    }
});

//! The config file parser: any text is settings or an error naming a line.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use signtop::config::Settings;

fuzz_target!(|text: &str| {
    if let Err(err) = Settings::from_toml_str(text, Path::new("fuzz.toml")) {
        assert!(err.to_string().starts_with("fuzz.toml:"), "{err}");
    }
});

//! Configuration: the TOML file (`config/signtop.toml`), its validation into
//! concrete [`Settings`], and command-line overrides on top.
//!
//! The file is read into [`FileConfig`] (every key optional, unknown keys
//! refused), then merged once over the defaults. Every error names the file,
//! the line and the key, and quotes the offending value.

use std::fmt;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::landmarks::keypoints::Layout;

/// Errors reading or validating a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An explicitly given config file does not exist.
    #[error("{}: config file not found", path.display())]
    NotFound {
        /// The file asked for.
        path: PathBuf,
    },
    /// The config file exists but could not be read.
    #[error("{}: cannot read config file", path.display())]
    Read {
        /// The file asked for.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("{}:{line}: {key}: {message}", file.display())]
    Parse {
        /// The config file.
        file: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// Dotted key at fault (`section.key`), or the section.
        key: String,
        /// What the TOML parser said.
        message: String,
    },
    /// A value has the right type but is not allowed.
    #[error("{}:{line}: {key} = {value} {reason}", file.display())]
    Invalid {
        /// The config file.
        file: PathBuf,
        /// 1-based line of the key.
        line: usize,
        /// Dotted key at fault (`section.key`).
        key: String,
        /// The value as written.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A command-line flag has a value that is not allowed.
    #[error("--{flag} {value} {reason}")]
    InvalidFlag {
        /// The flag name without dashes.
        flag: String,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
}

/// `config/signtop.toml`, built in: every setting with its default
/// (`signtop config` prints it, to start a config file from).
pub const DEFAULT_CONFIG: &str = include_str!("../config/signtop.toml");

/// The `[camera]` section as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraSection {
    /// V4L2 device path.
    pub device: Option<Spanned<String>>,
    /// Frame width in pixels.
    pub width: Option<Spanned<i64>>,
    /// Frame height in pixels.
    pub height: Option<Spanned<i64>>,
    /// Frames per second.
    pub fps: Option<Spanned<i64>>,
    /// Flip frames left-right.
    pub mirror: Option<Spanned<bool>>,
}

/// The `[models]` section as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsSection {
    /// Landmark models directory.
    pub models: Option<Spanned<String>>,
    /// Sign classifier ONNX file.
    pub sign_model: Option<Spanned<String>>,
    /// Keypoint layout name ("258" or "1662").
    pub layout: Option<Spanned<String>>,
}

/// The `[decision]` section as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionSection {
    /// Minimum probability for a sign.
    pub threshold: Option<Spanned<f64>>,
    /// Consecutive windows (one per model frame interval) a sign must win before it is emitted.
    pub debounce: Option<Spanned<i64>>,
    /// Frames of silence after an emitted sign.
    pub cooldown: Option<Spanned<i64>>,
    /// Signs kept in the transcript.
    pub transcript_length: Option<Spanned<i64>>,
}

/// The `[ui]` section as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiSection {
    /// Dashboard redraws per second.
    pub ui_refresh_hz: Option<Spanned<i64>>,
    /// Camera preview instead of the skeleton.
    pub preview: Option<Spanned<bool>>,
}

/// The config file as written: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[camera]`.
    pub camera: Option<CameraSection>,
    /// `[models]`.
    pub models: Option<ModelsSection>,
    /// `[decision]`.
    pub decision: Option<DecisionSection>,
    /// `[ui]`.
    pub ui: Option<UiSection>,
}

/// Validated settings with concrete values.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// V4L2 capture device.
    pub device: String,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Flip frames left-right before detection.
    pub mirror: bool,
    /// Landmark models directory (None: the models built into signtop).
    pub models: Option<PathBuf>,
    /// Sign classifier ONNX file (None: the one built into signtop).
    pub sign_model: Option<PathBuf>,
    /// Keypoint layout fed to the classifier.
    pub layout: Layout,
    /// Minimum probability for a sign to count.
    pub threshold: f32,
    /// Consecutive windows (one per model frame interval) a sign must win before it is emitted.
    pub debounce: u32,
    /// Windows after an emitted sign during which none is emitted.
    pub cooldown: u32,
    /// Signs kept in the transcript.
    pub transcript_length: usize,
    /// Dashboard redraws per second.
    pub ui_refresh_hz: u32,
    /// Camera preview instead of the skeleton at the start (`v` toggles).
    pub preview: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            device: "/dev/video0".to_string(),
            width: 640,
            height: 480,
            fps: 30,
            mirror: false,
            models: None,
            sign_model: None,
            layout: Layout::PoseHands,
            threshold: 0.7,
            debounce: 5,
            cooldown: 10,
            transcript_length: 20,
            ui_refresh_hz: 20,
            preview: false,
        }
    }
}

/// Command-line values that override the file (None = keep the file's value).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CliOverrides {
    /// `--device`.
    pub device: Option<String>,
    /// `--width`.
    pub width: Option<u32>,
    /// `--height`.
    pub height: Option<u32>,
    /// `--fps`.
    pub fps: Option<u32>,
    /// `--mirror`.
    pub mirror: Option<bool>,
    /// `--models`.
    pub models: Option<PathBuf>,
    /// `--sign-model`.
    pub sign_model: Option<PathBuf>,
    /// `--layout`.
    pub layout: Option<Layout>,
    /// `--threshold`.
    pub threshold: Option<f32>,
    /// `--debounce`.
    pub debounce: Option<u32>,
    /// `--cooldown`.
    pub cooldown: Option<u32>,
    /// `--transcript-length`.
    pub transcript_length: Option<usize>,
    /// `--ui-refresh-hz`.
    pub ui_refresh_hz: Option<u32>,
    /// `--preview`.
    pub preview: Option<bool>,
}

const SIZE_RANGE: RangeInclusive<i64> = 16..=8192;
const FPS_RANGE: RangeInclusive<i64> = 1..=240;
const DEBOUNCE_RANGE: RangeInclusive<i64> = 1..=u32::MAX as i64;
const COOLDOWN_RANGE: RangeInclusive<i64> = 0..=u32::MAX as i64;
const TRANSCRIPT_RANGE: RangeInclusive<i64> = 1..=1_000_000;
const REFRESH_RANGE: RangeInclusive<i64> = 1..=120;

/// The text of a config file and its name, to turn byte offsets into messages.
struct Source<'a> {
    text: &'a str,
    file: &'a Path,
}

impl Source<'_> {
    /// A relative path from the file is relative to the file's folder, so a
    /// config works from any working directory.
    fn path_beside(&self, path: PathBuf) -> PathBuf {
        match self.file.parent() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path,
        }
    }

    /// 1-based line holding byte `offset`.
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// The dotted key written on the line of `span` (section + key before `=`,
    /// or the section of a `[header]` line).
    fn key_at(&self, span: &Range<usize>) -> String {
        let line_no = self.line_of(span.start);
        let mut section = String::new();
        for (i, line) in self.text.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.starts_with('[') {
                section = trimmed
                    .trim_matches(|c| c == '[' || c == ']')
                    .trim()
                    .to_string();
                if i + 1 == line_no {
                    return section;
                }
            } else if i + 1 == line_no {
                let key = trimmed.split('=').next().unwrap_or("").trim();
                return match (section.is_empty(), key.is_empty()) {
                    (_, true) => "(no key)".to_string(),
                    (true, false) => key.to_string(),
                    (false, false) => format!("{section}.{key}"),
                };
            }
        }
        "(end of file)".to_string()
    }

    /// A parse error located at its line and key.
    fn parse_error(&self, err: &toml::de::Error) -> ConfigError {
        let span = err.span().unwrap_or(0..0);
        ConfigError::Parse {
            file: self.file.to_path_buf(),
            line: self.line_of(span.start),
            key: self.key_at(&span),
            message: err.message().trim().to_string(),
        }
    }

    /// A refused value located at its key's line.
    fn invalid<T: fmt::Display>(
        &self,
        key: &str,
        value: &Spanned<T>,
        reason: String,
    ) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_path_buf(),
            line: self.line_of(value.span().start),
            key: key.to_string(),
            value: self.text[value.span()].trim().to_string(),
            reason,
        }
    }

    /// An integer checked against `range`.
    fn int(
        &self,
        key: &str,
        value: &Spanned<i64>,
        range: RangeInclusive<i64>,
    ) -> Result<i64, ConfigError> {
        let v = *value.get_ref();
        if range.contains(&v) {
            Ok(v)
        } else {
            Err(self.invalid(key, value, out_of_range(&range)))
        }
    }
}

/// "is out of range (a..=b)", with open upper ends written as `a..`.
fn out_of_range(range: &RangeInclusive<i64>) -> String {
    if *range.end() >= u32::MAX as i64 {
        format!("is out of range ({}..)", range.start())
    } else {
        format!("is out of range ({}..={})", range.start(), range.end())
    }
}

/// Converts an integer already checked against a range that fits in `T`.
fn narrow<T: TryFrom<i64>>(v: i64, fallback: T) -> T {
    T::try_from(v).unwrap_or(fallback)
}

/// The user's config file, `$XDG_CONFIG_HOME/signtop/signtop.toml` (XDG's
/// default `~/.config`), if it exists.
pub fn user_config() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("signtop").join("signtop.toml")).filter(|p| p.is_file())
}

impl Settings {
    /// Reads and validates `path`; `None` gives the defaults.
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        let Some(path) = path else {
            return Ok(Settings::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ConfigError::NotFound {
                    path: path.to_path_buf(),
                }
            } else {
                ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        Settings::from_toml_str(&text, path)
    }

    /// Parses and validates TOML `text`; `path` only names the file in errors.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Settings, ConfigError> {
        let src = Source { text, file: path };
        let file: FileConfig = toml::from_str(text).map_err(|e| src.parse_error(&e))?;
        let mut settings = Settings::default();
        if let Some(camera) = &file.camera {
            settings.merge_camera(&src, camera)?;
        }
        if let Some(models) = &file.models {
            settings.merge_models(&src, models)?;
        }
        if let Some(decision) = &file.decision {
            settings.merge_decision(&src, decision)?;
        }
        if let Some(ui) = &file.ui {
            settings.merge_ui(&src, ui)?;
        }
        Ok(settings)
    }

    fn merge_camera(&mut self, src: &Source, c: &CameraSection) -> Result<(), ConfigError> {
        if let Some(v) = &c.device {
            if v.get_ref().trim().is_empty() {
                return Err(src.invalid("camera.device", v, "is empty".to_string()));
            }
            self.device = v.get_ref().clone();
        }
        if let Some(v) = &c.width {
            self.width = narrow(src.int("camera.width", v, SIZE_RANGE)?, self.width);
        }
        if let Some(v) = &c.height {
            self.height = narrow(src.int("camera.height", v, SIZE_RANGE)?, self.height);
        }
        if let Some(v) = &c.fps {
            self.fps = narrow(src.int("camera.fps", v, FPS_RANGE)?, self.fps);
        }
        if let Some(v) = &c.mirror {
            self.mirror = *v.get_ref();
        }
        Ok(())
    }

    fn merge_models(&mut self, src: &Source, m: &ModelsSection) -> Result<(), ConfigError> {
        if let Some(v) = &m.models {
            self.models = Some(src.path_beside(non_empty_path(src, "models.models", v)?));
        }
        if let Some(v) = &m.sign_model {
            self.sign_model = Some(src.path_beside(non_empty_path(src, "models.sign_model", v)?));
        }
        if let Some(v) = &m.layout {
            self.layout = v.get_ref().parse().map_err(|_| {
                src.invalid(
                    "models.layout",
                    v,
                    "is not a known layout (\"258\" or \"1662\")".to_string(),
                )
            })?;
        }
        Ok(())
    }

    fn merge_decision(&mut self, src: &Source, d: &DecisionSection) -> Result<(), ConfigError> {
        if let Some(v) = &d.threshold {
            if !(0.0..=1.0).contains(v.get_ref()) {
                let reason = "is out of range (0..=1)".to_string();
                return Err(src.invalid("decision.threshold", v, reason));
            }
            self.threshold = *v.get_ref() as f32;
        }
        if let Some(v) = &d.debounce {
            let n = src.int("decision.debounce", v, DEBOUNCE_RANGE)?;
            self.debounce = narrow(n, self.debounce);
        }
        if let Some(v) = &d.cooldown {
            let n = src.int("decision.cooldown", v, COOLDOWN_RANGE)?;
            self.cooldown = narrow(n, self.cooldown);
        }
        if let Some(v) = &d.transcript_length {
            let n = src.int("decision.transcript_length", v, TRANSCRIPT_RANGE)?;
            self.transcript_length = narrow(n, self.transcript_length);
        }
        Ok(())
    }

    fn merge_ui(&mut self, src: &Source, u: &UiSection) -> Result<(), ConfigError> {
        if let Some(v) = &u.ui_refresh_hz {
            let n = src.int("ui.ui_refresh_hz", v, REFRESH_RANGE)?;
            self.ui_refresh_hz = narrow(n, self.ui_refresh_hz);
        }
        if let Some(v) = &u.preview {
            self.preview = *v.get_ref();
        }
        Ok(())
    }

    /// Applies command-line overrides (they win over the file), checking each
    /// against the same ranges as the file.
    pub fn apply(&mut self, o: &CliOverrides) -> Result<(), ConfigError> {
        if let Some(v) = &o.device {
            self.device = v.clone();
        }
        if let Some(v) = o.width {
            self.width = flag_in("width", v, SIZE_RANGE)?;
        }
        if let Some(v) = o.height {
            self.height = flag_in("height", v, SIZE_RANGE)?;
        }
        if let Some(v) = o.fps {
            self.fps = flag_in("fps", v, FPS_RANGE)?;
        }
        if let Some(v) = o.mirror {
            self.mirror = v;
        }
        if let Some(v) = &o.models {
            self.models = Some(v.clone());
        }
        if let Some(v) = &o.sign_model {
            self.sign_model = Some(v.clone());
        }
        if let Some(v) = o.layout {
            self.layout = v;
        }
        if let Some(v) = o.threshold {
            if !(0.0..=1.0).contains(&v) {
                return Err(ConfigError::InvalidFlag {
                    flag: "threshold".to_string(),
                    value: v.to_string(),
                    reason: "is out of range (0..=1)".to_string(),
                });
            }
            self.threshold = v;
        }
        if let Some(v) = o.debounce {
            self.debounce = flag_in("debounce", v, DEBOUNCE_RANGE)?;
        }
        if let Some(v) = o.cooldown {
            self.cooldown = v;
        }
        if let Some(v) = o.transcript_length {
            let n = i64::try_from(v).unwrap_or(i64::MAX);
            flag_in("transcript-length", n, TRANSCRIPT_RANGE)?;
            self.transcript_length = v;
        }
        if let Some(v) = o.ui_refresh_hz {
            self.ui_refresh_hz = flag_in("ui-refresh-hz", v, REFRESH_RANGE)?;
        }
        if let Some(v) = o.preview {
            self.preview = v;
        }
        Ok(())
    }
}

/// A path value that must not be empty.
fn non_empty_path(src: &Source, key: &str, v: &Spanned<String>) -> Result<PathBuf, ConfigError> {
    if v.get_ref().trim().is_empty() {
        return Err(src.invalid(key, v, "is empty".to_string()));
    }
    Ok(PathBuf::from(v.get_ref()))
}

/// A flag value checked against `range`.
fn flag_in<T: Copy + Into<i64> + fmt::Display>(
    flag: &str,
    v: T,
    range: RangeInclusive<i64>,
) -> Result<T, ConfigError> {
    if range.contains(&v.into()) {
        Ok(v)
    } else {
        Err(ConfigError::InvalidFlag {
            flag: flag.to_string(),
            value: v.to_string(),
            reason: out_of_range(&range),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/config");

    fn fixture_error(name: &str) -> String {
        let path = Path::new(FIXTURES).join(name);
        match Settings::load(Some(&path)) {
            Ok(s) => panic!("{name} should be refused, got {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn shipped_config_equals_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/signtop.toml");
        assert_eq!(Settings::load(Some(&path)).unwrap(), Settings::default());
        let built_in = Settings::from_toml_str(DEFAULT_CONFIG, Path::new("signtop.toml"));
        assert_eq!(built_in.unwrap(), Settings::default());
    }

    #[test]
    fn the_shipped_config_shows_how_to_set_the_model_paths() {
        // Commented out (the built-in models are the default); uncommented
        // they must parse as the keys they document.
        let uncommented = DEFAULT_CONFIG
            .replace("# models = ", "models = ")
            .replace("# sign_model = ", "sign_model = ");
        let s =
            Settings::from_toml_str(&uncommented, Path::new("/etc/signtop/signtop.toml")).unwrap();
        assert!(s.models.is_some() && s.sign_model.is_some(), "{s:?}");
    }

    #[test]
    fn relative_model_paths_are_relative_to_the_file() {
        let text = "[models]\nmodels = \"m\"\nsign_model = \"/abs/s.onnx\"\n";
        let s = Settings::from_toml_str(text, Path::new("/etc/signtop/signtop.toml")).unwrap();
        assert_eq!(s.models.unwrap(), Path::new("/etc/signtop/m"));
        assert_eq!(s.sign_model.unwrap(), Path::new("/abs/s.onnx"));
    }

    #[test]
    fn no_file_gives_defaults() {
        assert_eq!(Settings::load(None).unwrap(), Settings::default());
    }

    #[test]
    fn empty_file_gives_defaults() {
        let s = Settings::from_toml_str("", Path::new("empty.toml")).unwrap();
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn partial_file_keeps_other_defaults() {
        let text = "[decision]\nthreshold = 0.9\n[models]\nlayout = \"1662\"\n";
        let s = Settings::from_toml_str(text, Path::new("p.toml")).unwrap();
        assert_eq!(s.threshold, 0.9);
        assert_eq!(s.layout, Layout::PoseFaceHands);
        assert_eq!(s.fps, 30);
    }

    #[test]
    fn missing_file_is_named() {
        let path = Path::new(FIXTURES).join("does-not-exist.toml");
        let msg = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(msg.contains("does-not-exist.toml"), "{msg}");
        assert!(msg.contains("not found"), "{msg}");
    }

    #[test]
    fn threshold_out_of_range_names_line_key_value() {
        let msg = fixture_error("threshold_out_of_range.toml");
        assert!(
            msg.ends_with(
                "threshold_out_of_range.toml:5: decision.threshold = 1.5 is out of range (0..=1)"
            ),
            "{msg}"
        );
    }

    #[test]
    fn fps_out_of_range_names_line_key_value() {
        let msg = fixture_error("fps_zero.toml");
        assert!(
            msg.ends_with("fps_zero.toml:4: camera.fps = 0 is out of range (1..=240)"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_type_names_line_and_key() {
        let msg = fixture_error("wrong_type.toml");
        assert!(msg.contains("wrong_type.toml:3: camera.width:"), "{msg}");
        assert!(msg.contains("string"), "{msg}");
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let msg = fixture_error("unknown_key.toml");
        assert!(
            msg.contains("unknown_key.toml:4: decision.treshold:"),
            "{msg}"
        );
        assert!(msg.contains("treshold"), "{msg}");
    }

    #[test]
    fn unknown_section_names_line() {
        let msg = fixture_error("unknown_section.toml");
        assert!(msg.contains("unknown_section.toml:3: audio:"), "{msg}");
    }

    #[test]
    fn bad_layout_names_line_key_value() {
        let msg = fixture_error("bad_layout.toml");
        assert!(
            msg.contains("bad_layout.toml:4: models.layout = \"543\" is not a known layout"),
            "{msg}"
        );
    }

    #[test]
    fn syntax_error_names_line_and_key() {
        let msg = fixture_error("syntax_error.toml");
        assert!(msg.contains("syntax_error.toml:6: camera.height:"), "{msg}");
    }

    #[test]
    fn overrides_win_over_file() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/signtop.toml");
        let mut s = Settings::load(Some(&path)).unwrap();
        let o = CliOverrides {
            device: Some("/dev/video2".to_string()),
            fps: Some(60),
            threshold: Some(0.5),
            layout: Some(Layout::PoseFaceHands),
            mirror: Some(true),
            ..CliOverrides::default()
        };
        s.apply(&o).unwrap();
        assert_eq!(s.device, "/dev/video2");
        assert_eq!(s.fps, 60);
        assert_eq!(s.threshold, 0.5);
        assert_eq!(s.layout, Layout::PoseFaceHands);
        assert!(s.mirror);
        assert_eq!(s.width, 640);
    }

    #[test]
    fn bad_override_is_refused() {
        let mut s = Settings::default();
        let o = CliOverrides {
            threshold: Some(2.0),
            ..CliOverrides::default()
        };
        let msg = s.apply(&o).unwrap_err().to_string();
        assert_eq!(msg, "--threshold 2 is out of range (0..=1)");
        let o = CliOverrides {
            ui_refresh_hz: Some(0),
            ..CliOverrides::default()
        };
        let msg = s.apply(&o).unwrap_err().to_string();
        assert_eq!(msg, "--ui-refresh-hz 0 is out of range (1..=120)");
    }
}

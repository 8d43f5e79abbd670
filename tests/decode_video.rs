//! Videos through the ffmpeg and ffprobe programs (installed by the test
//! itself when missing, as root): every frame of a real clip at its rate, and
//! a file that is no video named in a probe error.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::system::{self, FFMPEG};
use signtop::capture::decode::{DecodeError, MediaKind, MediaReader};

const COW: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/media/cow_correct.gif"
);

#[test]
fn decodes_a_real_video_through_ffmpeg() {
    system::require(&[FFMPEG]);
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("cow.mp4");
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-i",
            COW,
            "-pix_fmt",
            "yuv420p",
            "-vf",
            "scale=346:196",
        ])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(status.success());
    let reader = MediaReader::open(&clip).unwrap();
    let info = reader.info().clone();
    assert_eq!(info.kind, MediaKind::Video);
    assert_eq!((info.width, info.height), (346, 196));
    assert!((info.fps.unwrap() - 10.0).abs() < 0.01, "{info:?}");
    let frames = reader.inspect(|f| assert!(f.is_ok(), "{f:?}")).count();
    assert_eq!(frames, 47);
}

#[test]
fn a_file_that_is_no_video_is_a_probe_error() {
    system::require(&[FFMPEG]);
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("noise.mp4");
    std::fs::write(&clip, vec![7u8; 4096]).unwrap();
    let err = MediaReader::open(Path::new(&clip)).err().unwrap();
    assert!(matches!(err, DecodeError::Probe { .. }), "{err}");
    assert!(err.to_string().contains("noise.mp4"), "{err}");
}

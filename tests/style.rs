//! The code is formatted as `cargo fmt` would: CI fails otherwise.

#[test]
fn code_is_rustfmt_clean() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["fmt", "--check"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo fmt");
    assert!(
        out.status.success(),
        "cargo fmt --check found unformatted code:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#!/bin/sh
# Regenerates src/bindings.rs: builds the crates.io v4l2-sys-mit 0.3.0 in a
# throwaway project, so its own build script (bindgen 0.65.1 over
# `#include <linux/videodev2.h>`, default options) writes the bindings, and
# copies them here. Needs what that build script needs: libclang and the
# kernel's UAPI headers (Debian: apt-get install libclang1-14 linux-libc-dev).
# Afterwards run `cargo test --test v4l2_layout` at the top of signtop.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"
: >"$work/src/lib.rs"
cat >"$work/Cargo.toml" <<'TOML'
[package]
name = "regenerate-v4l2-bindings"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
v4l2-sys-mit = "=0.3.0"

[workspace]
TOML
cargo build --quiet --manifest-path "$work/Cargo.toml" --target-dir "$work/target"
cp "$work"/target/debug/build/v4l2-sys-mit-*/out/v4l2_bindings.rs "$here/src/bindings.rs"
echo "wrote $here/src/bindings.rs from $(dpkg-query -W -f '${Package} ${Version}' linux-libc-dev 2>/dev/null || echo 'this machine'"'"'s linux/videodev2.h')"

//! Raw V4L2 bindings: bindgen's output for `linux/videodev2.h`, generated
//! once by `regenerate.sh` and checked in, so that building signtop needs no
//! libclang. Same items as crates.io's `v4l2-sys-mit` 0.3.0, whose build
//! script generates them at every build. signtop's `tests/v4l2_layout.rs`
//! checks them against the header with the C compiler.
#![allow(clippy::all)]
#![allow(deref_nullptr)]
#![allow(non_camel_case_types)]
#![allow(non_snake_case)]
#![allow(non_upper_case_globals)]

include!("bindings.rs");

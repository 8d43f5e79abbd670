//! The checked-in V4L2 bindings (`src/sys/v4l2-sys-mit`, which the `v4l` crate
//! uses in place of crates.io's bindgen-at-build-time crate) against the
//! kernel header they came from: a C program built with gcc against
//! `linux/videodev2.h` prints every ioctl number the `v4l` crate uses (each
//! encodes its argument's size), the size, alignment and field offsets of the
//! structs passed to those ioctls, and the constants signtop and `v4l` read;
//! the same figures from rustc must match.
#![allow(clippy::unwrap_used)]

mod common;

use std::fmt::Write as _;
use std::mem::{align_of, offset_of, size_of};
use std::process::Command;

use common::system::{self, GCC, LINUX_HEADERS};
use v4l::v4l_sys::*;
use v4l::v4l2::vidioc;

/// One figure: the C expression that gives it, and rustc's value of the same.
struct Figure {
    c_expression: String,
    rust: u64,
}

/// sizeof, alignment and each named field's offset of the given structs
/// (bindgen names a field `type` as `type_` and `priv` as `priv_`; anonymous
/// unions have no name to give `offsetof`, their neighbours place them).
macro_rules! layouts {
    ($($name:ident { $($field:ident),* $(,)? }),* $(,)?) => {{
        let mut figures = Vec::new();
        $(
            figures.push(Figure {
                c_expression: format!("sizeof(struct {})", stringify!($name)),
                rust: size_of::<$name>() as u64,
            });
            figures.push(Figure {
                c_expression: format!("_Alignof(struct {})", stringify!($name)),
                rust: align_of::<$name>() as u64,
            });
            $(
                figures.push(Figure {
                    c_expression: format!(
                        "offsetof(struct {}, {})",
                        stringify!($name),
                        stringify!($field).trim_end_matches('_')
                    ),
                    rust: offset_of!($name, $field) as u64,
                });
            )*
        )*
        figures
    }};
}

/// Constants by their C name, with the Rust item holding each.
macro_rules! constants {
    ($($c_name:ident = $rust:expr),* $(,)?) => {
        vec![$(Figure {
            c_expression: stringify!($c_name).to_string(),
            rust: $rust as u64,
        }),*]
    };
}

/// Every ioctl number `v4l` defines (`v4l::v4l2::vidioc`).
fn ioctls() -> Vec<Figure> {
    // Newer headers no longer name VIDIOC_RESERVED; its number stays.
    #[allow(clippy::unnecessary_cast)] // c_ulong: u64 on glibc, not on every libc
    let reserved = Figure {
        c_expression: "_IO('V', 1)".to_string(),
        rust: vidioc::VIDIOC_RESERVED as u64,
    };
    let mut figures = vec![reserved];
    figures.extend(constants!(
        VIDIOC_QUERYCAP = vidioc::VIDIOC_QUERYCAP,
        VIDIOC_ENUM_FMT = vidioc::VIDIOC_ENUM_FMT,
        VIDIOC_G_FMT = vidioc::VIDIOC_G_FMT,
        VIDIOC_S_FMT = vidioc::VIDIOC_S_FMT,
        VIDIOC_REQBUFS = vidioc::VIDIOC_REQBUFS,
        VIDIOC_QUERYBUF = vidioc::VIDIOC_QUERYBUF,
        VIDIOC_G_FBUF = vidioc::VIDIOC_G_FBUF,
        VIDIOC_S_FBUF = vidioc::VIDIOC_S_FBUF,
        VIDIOC_OVERLAY = vidioc::VIDIOC_OVERLAY,
        VIDIOC_QBUF = vidioc::VIDIOC_QBUF,
        VIDIOC_EXPBUF = vidioc::VIDIOC_EXPBUF,
        VIDIOC_DQBUF = vidioc::VIDIOC_DQBUF,
        VIDIOC_STREAMON = vidioc::VIDIOC_STREAMON,
        VIDIOC_STREAMOFF = vidioc::VIDIOC_STREAMOFF,
        VIDIOC_G_PARM = vidioc::VIDIOC_G_PARM,
        VIDIOC_S_PARM = vidioc::VIDIOC_S_PARM,
        VIDIOC_G_STD = vidioc::VIDIOC_G_STD,
        VIDIOC_S_STD = vidioc::VIDIOC_S_STD,
        VIDIOC_ENUMSTD = vidioc::VIDIOC_ENUMSTD,
        VIDIOC_ENUMINPUT = vidioc::VIDIOC_ENUMINPUT,
        VIDIOC_G_CTRL = vidioc::VIDIOC_G_CTRL,
        VIDIOC_S_CTRL = vidioc::VIDIOC_S_CTRL,
        VIDIOC_G_TUNER = vidioc::VIDIOC_G_TUNER,
        VIDIOC_S_TUNER = vidioc::VIDIOC_S_TUNER,
        VIDIOC_G_AUDIO = vidioc::VIDIOC_G_AUDIO,
        VIDIOC_S_AUDIO = vidioc::VIDIOC_S_AUDIO,
        VIDIOC_QUERYCTRL = vidioc::VIDIOC_QUERYCTRL,
        VIDIOC_QUERYMENU = vidioc::VIDIOC_QUERYMENU,
        VIDIOC_G_INPUT = vidioc::VIDIOC_G_INPUT,
        VIDIOC_S_INPUT = vidioc::VIDIOC_S_INPUT,
        VIDIOC_G_EDID = vidioc::VIDIOC_G_EDID,
        VIDIOC_S_EDID = vidioc::VIDIOC_S_EDID,
        VIDIOC_G_OUTPUT = vidioc::VIDIOC_G_OUTPUT,
        VIDIOC_S_OUTPUT = vidioc::VIDIOC_S_OUTPUT,
        VIDIOC_ENUMOUTPUT = vidioc::VIDIOC_ENUMOUTPUT,
        VIDIOC_G_AUDOUT = vidioc::VIDIOC_G_AUDOUT,
        VIDIOC_S_AUDOUT = vidioc::VIDIOC_S_AUDOUT,
        VIDIOC_G_MODULATOR = vidioc::VIDIOC_G_MODULATOR,
        VIDIOC_S_MODULATOR = vidioc::VIDIOC_S_MODULATOR,
        VIDIOC_G_FREQUENCY = vidioc::VIDIOC_G_FREQUENCY,
        VIDIOC_S_FREQUENCY = vidioc::VIDIOC_S_FREQUENCY,
        VIDIOC_CROPCAP = vidioc::VIDIOC_CROPCAP,
        VIDIOC_G_CROP = vidioc::VIDIOC_G_CROP,
        VIDIOC_S_CROP = vidioc::VIDIOC_S_CROP,
        VIDIOC_G_JPEGCOMP = vidioc::VIDIOC_G_JPEGCOMP,
        VIDIOC_S_JPEGCOMP = vidioc::VIDIOC_S_JPEGCOMP,
        VIDIOC_QUERYSTD = vidioc::VIDIOC_QUERYSTD,
        VIDIOC_TRY_FMT = vidioc::VIDIOC_TRY_FMT,
        VIDIOC_ENUMAUDIO = vidioc::VIDIOC_ENUMAUDIO,
        VIDIOC_ENUMAUDOUT = vidioc::VIDIOC_ENUMAUDOUT,
        VIDIOC_G_PRIORITY = vidioc::VIDIOC_G_PRIORITY,
        VIDIOC_S_PRIORITY = vidioc::VIDIOC_S_PRIORITY,
        VIDIOC_G_SLICED_VBI_CAP = vidioc::VIDIOC_G_SLICED_VBI_CAP,
        VIDIOC_LOG_STATUS = vidioc::VIDIOC_LOG_STATUS,
        VIDIOC_G_EXT_CTRLS = vidioc::VIDIOC_G_EXT_CTRLS,
        VIDIOC_S_EXT_CTRLS = vidioc::VIDIOC_S_EXT_CTRLS,
        VIDIOC_TRY_EXT_CTRLS = vidioc::VIDIOC_TRY_EXT_CTRLS,
        VIDIOC_ENUM_FRAMESIZES = vidioc::VIDIOC_ENUM_FRAMESIZES,
        VIDIOC_ENUM_FRAMEINTERVALS = vidioc::VIDIOC_ENUM_FRAMEINTERVALS,
        VIDIOC_G_ENC_INDEX = vidioc::VIDIOC_G_ENC_INDEX,
        VIDIOC_ENCODER_CMD = vidioc::VIDIOC_ENCODER_CMD,
        VIDIOC_TRY_ENCODER_CMD = vidioc::VIDIOC_TRY_ENCODER_CMD,
        VIDIOC_QUERY_EXT_CTRL = vidioc::VIDIOC_QUERY_EXT_CTRL,
    ));
    figures
}

/// The structs signtop's camera code goes through (`v4l`'s capture path).
fn structs() -> Vec<Figure> {
    layouts!(
        timeval { tv_sec, tv_usec },
        v4l2_capability {
            driver,
            card,
            bus_info,
            version,
            capabilities,
            device_caps,
            reserved
        },
        v4l2_fmtdesc {
            index,
            type_,
            flags,
            description,
            pixelformat,
            mbus_code,
            reserved
        },
        v4l2_format { type_, fmt },
        v4l2_pix_format {
            width,
            height,
            pixelformat,
            field,
            bytesperline,
            sizeimage,
            colorspace,
            priv_,
            flags,
            quantization,
            xfer_func,
        },
        v4l2_requestbuffers {
            count,
            type_,
            memory,
            capabilities,
            flags,
            reserved
        },
        v4l2_buffer {
            index,
            type_,
            bytesused,
            flags,
            field,
            timestamp,
            timecode,
            sequence,
            memory,
            m,
            length,
            reserved2,
        },
        v4l2_timecode {
            type_,
            flags,
            frames,
            seconds,
            minutes,
            hours,
            userbits
        },
        v4l2_streamparm { type_, parm },
        v4l2_captureparm {
            capability,
            capturemode,
            timeperframe,
            extendedmode,
            readbuffers,
            reserved
        },
        v4l2_outputparm {
            capability,
            outputmode,
            timeperframe,
            extendedmode,
            writebuffers,
            reserved
        },
        v4l2_fract {
            numerator,
            denominator
        },
        v4l2_frmsizeenum {
            index,
            pixel_format,
            type_,
            reserved
        },
        v4l2_frmsize_discrete { width, height },
        v4l2_frmsize_stepwise {
            min_width,
            max_width,
            step_width,
            min_height,
            max_height,
            step_height,
        },
        v4l2_frmivalenum {
            index,
            pixel_format,
            width,
            height,
            type_,
            reserved
        },
        v4l2_frmival_stepwise { min, max, step },
        v4l2_control { id, value },
        v4l2_queryctrl {
            id,
            type_,
            name,
            minimum,
            maximum,
            step,
            default_value,
            flags,
            reserved
        },
        v4l2_query_ext_ctrl {
            id,
            type_,
            name,
            minimum,
            maximum,
            step,
            default_value,
            flags,
            elem_size,
            elems,
            nr_of_dims,
            dims,
            reserved,
        },
        v4l2_querymenu {
            id,
            index,
            reserved
        },
        v4l2_ext_control {
            id,
            size,
            reserved2
        },
        v4l2_ext_controls {
            count,
            error_idx,
            request_fd,
            reserved,
            controls
        },
    )
}

/// Flags and enum values signtop and `v4l` read.
fn flags() -> Vec<Figure> {
    constants!(
        V4L2_CAP_VIDEO_CAPTURE = V4L2_CAP_VIDEO_CAPTURE,
        V4L2_CAP_STREAMING = V4L2_CAP_STREAMING,
        V4L2_CAP_DEVICE_CAPS = V4L2_CAP_DEVICE_CAPS,
        V4L2_CAP_META_CAPTURE = V4L2_CAP_META_CAPTURE,
        V4L2_BUF_FLAG_ERROR = V4L2_BUF_FLAG_ERROR,
        V4L2_BUF_FLAG_TIMESTAMP_MASK = V4L2_BUF_FLAG_TIMESTAMP_MASK,
        V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC = V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC,
        V4L2_CTRL_FLAG_NEXT_CTRL = V4L2_CTRL_FLAG_NEXT_CTRL,
        V4L2_CTRL_FLAG_NEXT_COMPOUND = V4L2_CTRL_FLAG_NEXT_COMPOUND,
        V4L2_BUF_TYPE_VIDEO_CAPTURE = v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE,
        V4L2_MEMORY_MMAP = v4l2_memory_V4L2_MEMORY_MMAP,
        V4L2_FIELD_NONE = v4l2_field_V4L2_FIELD_NONE,
        V4L2_FRMSIZE_TYPE_DISCRETE = v4l2_frmsizetypes_V4L2_FRMSIZE_TYPE_DISCRETE,
        V4L2_FRMSIZE_TYPE_CONTINUOUS = v4l2_frmsizetypes_V4L2_FRMSIZE_TYPE_CONTINUOUS,
        V4L2_FRMSIZE_TYPE_STEPWISE = v4l2_frmsizetypes_V4L2_FRMSIZE_TYPE_STEPWISE,
        V4L2_FRMIVAL_TYPE_DISCRETE = v4l2_frmivaltypes_V4L2_FRMIVAL_TYPE_DISCRETE,
        V4L2_FRMIVAL_TYPE_CONTINUOUS = v4l2_frmivaltypes_V4L2_FRMIVAL_TYPE_CONTINUOUS,
        V4L2_FRMIVAL_TYPE_STEPWISE = v4l2_frmivaltypes_V4L2_FRMIVAL_TYPE_STEPWISE,
    )
}

/// gcc's value of each figure's C expression, compiled against the header.
fn values_from_the_header(figures: &[Figure]) -> Vec<u64> {
    system::require(&[GCC, LINUX_HEADERS]);
    let dir = tempfile::tempdir().unwrap();
    let mut program = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include <linux/videodev2.h>\n\
         int main(void) {\n",
    );
    for figure in figures {
        writeln!(
            program,
            "    printf(\"%llu\\n\", (unsigned long long)({}));",
            figure.c_expression
        )
        .unwrap();
    }
    program.push_str("    return 0;\n}\n");
    let source = dir.path().join("layout.c");
    let binary = dir.path().join("layout");
    std::fs::write(&source, program).unwrap();
    let built = Command::new("gcc")
        .arg(&source)
        .arg("-o")
        .arg(&binary)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let ran = Command::new(&binary).output().unwrap();
    assert!(ran.status.success());
    String::from_utf8(ran.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

#[test]
fn bindings_match_the_kernel_header() {
    let figures: Vec<Figure> = [ioctls(), structs(), flags()]
        .into_iter()
        .flatten()
        .collect();
    let from_c = values_from_the_header(&figures);
    assert_eq!(from_c.len(), figures.len());
    let wrong: Vec<String> = figures
        .iter()
        .zip(&from_c)
        .filter(|(figure, c)| figure.rust != **c)
        .map(|(figure, c)| {
            format!(
                "{}: header {c}, bindings {}",
                figure.c_expression, figure.rust
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "bindings differ from the header:\n{}",
        wrong.join("\n")
    );
    // Not a vacuous pass: the ioctl numbers carry their structs' sizes.
    assert!(figures.len() > 200, "{} figures", figures.len());
}

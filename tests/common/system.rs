//! The Debian packages a test needs from the system (tmux, ffmpeg, qemu, ...):
//! [`require`] installs the missing ones with apt-get when the tests run as
//! root (as CI does), and otherwise fails the test with the exact
//! `apt-get install` line to run. Each test names what it needs, so a fresh
//! machine needs nothing installed by hand before `cargo test`.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

/// A Debian package, and a file it installs that shows it is there.
#[derive(Clone, Copy, Debug)]
pub struct Package {
    /// The package name.
    pub name: &'static str,
    /// A file the package installs.
    pub provides: &'static str,
}

pub const TMUX: Package = Package {
    name: "tmux",
    provides: "/usr/bin/tmux",
};
/// `pgrep` and `kill`.
pub const PROCPS: Package = Package {
    name: "procps",
    provides: "/usr/bin/pgrep",
};
/// `ffmpeg` and `ffprobe`.
pub const FFMPEG: Package = Package {
    name: "ffmpeg",
    provides: "/usr/bin/ffprobe",
};
pub const QEMU: Package = Package {
    name: "qemu-system-x86",
    provides: "/usr/bin/qemu-system-x86_64",
};
pub const BUSYBOX: Package = Package {
    name: "busybox-static",
    provides: "/bin/busybox",
};
pub const CPIO: Package = Package {
    name: "cpio",
    provides: "/usr/bin/cpio",
};
/// `depmod` and `modprobe`.
pub const KMOD: Package = Package {
    name: "kmod",
    provides: "/usr/sbin/depmod",
};
/// The font `eval --plots` writes its text in.
pub const FONTS_DEJAVU: Package = Package {
    name: "fonts-dejavu-core",
    provides: "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
};
/// The C compiler (Rust's linker driver on Linux, so normally there).
pub const GCC: Package = Package {
    name: "gcc",
    provides: "/usr/bin/gcc",
};
/// The kernel's UAPI headers (`linux/videodev2.h`).
pub const LINUX_HEADERS: Package = Package {
    name: "linux-libc-dev",
    provides: "/usr/include/linux/videodev2.h",
};

/// Makes sure every package in `needs` is installed: apt-get installs the
/// missing ones as root; as any other user the test fails, naming them.
pub fn require(needs: &[Package]) {
    // Tests of one binary run on parallel threads; one apt-get at a time.
    static APT: Mutex<()> = Mutex::new(());
    let _one_at_a_time = APT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let missing: Vec<&str> = needs
        .iter()
        .filter(|p| !Path::new(p.provides).exists())
        .map(|p| p.name)
        .collect();
    if missing.is_empty() {
        return;
    }
    let install = format!(
        "apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    assert!(
        is_root(),
        "this test needs Debian packages that are not installed; run: sudo {install}"
    );
    eprintln!("installing for the tests: {install}");
    apt_get(&["update"]);
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(&missing);
    apt_get(&args);
    for package in needs {
        assert!(
            Path::new(package.provides).exists(),
            "{} installed, but {} is still missing",
            package.name,
            package.provides
        );
    }
}

fn apt_get(args: &[&str]) {
    let out = Command::new("apt-get")
        // Another apt-get (another test run, the system's own updates) may
        // hold the lock for a while: wait for it rather than fail.
        .args(["-o", "DPkg::Lock::Timeout=600"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap_or_else(|e| panic!("running apt-get {args:?}: {e}"));
    assert!(
        out.status.success(),
        "apt-get {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether the tests run as root (and so may install packages).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

//! Debian packages the rig needs, installed when missing.
//!
//! The guest kernel comes from Debian's `linux-source-6.12` in bookworm-backports, and so does a
//! QEMU that installs beside backports' qemu-utils. The backports suite is added with the
//! mirror the machine's own apt sources already use; no registry host is written here.

use std::path::Path;
use std::process::Command;

use crate::process::{have, output, run, succeeds};
use crate::Result;

/// Packages for building and running the workspace and the guest kernel.
const PACKAGES: &[&str] = &[
    // kernel build
    "make",
    "gcc",
    "flex",
    "bison",
    "bc",
    "libelf-dev",
    "libssl-dev",
    "xz-utils",
    // libgbm and libdrm for the gbm crate; Mesa's GBM/DRI drivers used in the guest
    "libgbm-dev",
    "libdrm-dev",
    "libgl1-mesa-dri",
    // smithay (compositor example)
    "libxkbcommon-dev",
    "libpixman-1-dev",
    "libudev-dev",
    "pkg-config",
    // the compositor's --session (cargo feature libseat) and the seat daemon its test runs
    "libseat-dev",
    "seatd",
    // programs nobody here wrote, run against cenalloc in the guest: weston and its demo
    // clients, wayland-info, v4l2-ctl, GStreamer's tools and V4L2/KMS/Wayland elements
    "weston",
    "wayland-utils",
    "v4l-utils",
    "gstreamer1.0-tools",
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-bad",
    // libcenalloc's C checks: C++ compile of the header, memcheck of the C test
    "g++",
    "valgrind",
    // the GStreamer plugin crate (gstreamer-rs)
    "libgstreamer1.0-dev",
    "libgstreamer-plugins-base1.0-dev",
];

const BACKPORTS_LIST: &str = "/etc/apt/sources.list.d/cenalloc-backports.sources";

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status}", pkg])
        .output()
        .map(|o| o.status.success() && o.stdout == b"installed")
        .unwrap_or(false)
}

fn is_root() -> bool {
    rustix_free_geteuid() == 0
}

fn rustix_free_geteuid() -> u32 {
    // `id -u` keeps xtask free of libc bindings.
    output(Command::new("id").arg("-u"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u32::MAX)
}

fn apt_install(args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(args);
    if !is_root() {
        return Err(format!(
            "missing packages; run as root: DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {}",
            args.join(" ")
        ));
    }
    run(&mut cmd)
}

/// The Debian archive URI this machine's apt sources use for bookworm.
fn debian_mirror() -> Result<String> {
    let mut texts = Vec::new();
    for f in ["/etc/apt/sources.list"] {
        if let Ok(t) = std::fs::read_to_string(f) {
            texts.push(t);
        }
    }
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for e in dir.flatten() {
            if e.path() == Path::new(BACKPORTS_LIST) {
                continue;
            }
            if let Ok(t) = std::fs::read_to_string(e.path()) {
                texts.push(t);
            }
        }
    }
    for text in &texts {
        // deb822 stanzas: URIs + Suites containing bookworm
        for stanza in text.split("\n\n") {
            let field = |name: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            };
            if let (Some(uris), Some(suites)) = (field("URIs:"), field("Suites:")) {
                if suites.split_whitespace().any(|s| s == "bookworm") {
                    if let Some(uri) = uris.split_whitespace().next() {
                        return Ok(uri.to_owned());
                    }
                }
            }
        }
        // one-line format: deb [opts] URI bookworm main
        for line in text.lines() {
            let words: Vec<&str> = line
                .split_whitespace()
                .filter(|w| !w.starts_with('['))
                .collect();
            if words.len() >= 3 && words[0] == "deb" && words[2] == "bookworm" {
                return Ok(words[1].to_owned());
            }
        }
    }
    Err("no bookworm Debian archive found in /etc/apt/sources.list*".into())
}

fn ensure_backports() -> Result<()> {
    if !Path::new(BACKPORTS_LIST).exists() {
        if !is_root() {
            return Err("bookworm-backports is not configured; as root, add it to apt's sources and run apt-get update".into());
        }
        let mirror = debian_mirror()?;
        let text = format!(
            "Types: deb\nURIs: {mirror}\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        );
        std::fs::write(BACKPORTS_LIST, text)
            .map_err(|e| format!("cannot write {BACKPORTS_LIST}: {e}"))?;
        eprintln!("xtask: added bookworm-backports ({mirror}) to apt sources");
        return run(Command::new("apt-get").args(["update", "-q"]));
    }
    let has_source = Command::new("apt-cache")
        .args(["policy", "linux-source-6.12"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("Candidate: 6.12"))
        .unwrap_or(false);
    if !has_source {
        run(Command::new("apt-get").args(["update", "-q"]))?;
    }
    Ok(())
}

/// Installs those of `packages` that are missing (tools only one command needs).
pub fn ensure_also(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if !missing.is_empty() {
        eprintln!("xtask: installing {}", missing.join(" "));
        apt_install(&missing)?;
    }
    Ok(())
}

/// Installs every missing package (and QEMU), adding bookworm-backports if needed.
pub fn ensure() -> Result<()> {
    ensure_backports()?;
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if !missing.is_empty() {
        eprintln!("xtask: installing {}", missing.join(" "));
        apt_install(&missing)?;
    }
    if !have("qemu-system-x86_64") {
        eprintln!("xtask: installing qemu-system-x86");
        // bookworm's QEMU conflicts with backports' qemu-utils where that is installed.
        if apt_install(&["qemu-system-x86"]).is_err() {
            apt_install(&["-t", "bookworm-backports", "qemu-system-x86"])?;
        }
    }
    if !succeeds(Command::new("qemu-system-x86_64").arg("--version")) {
        return Err("qemu-system-x86_64 is installed but does not run".into());
    }
    Ok(())
}

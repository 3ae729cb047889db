//! The guest kernel: Debian's linux-source-6.12 built from `vm/kernel.config` (every driver
//! built in, no modules, no initramfs), cached outside the git tree keyed by the source
//! package version and the fragment's hash, so it is built once per machine and again only
//! when either input changes.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::process::{output, run};
use crate::{packages, workspace_root, Result};

const SOURCE_PACKAGE: &str = "linux-source-6.12";

/// Where cenalloc keeps what outlives a clone: `$CENALLOC_CACHE`, else
/// `$XDG_CACHE_HOME/cenalloc`, else `~/.cache/cenalloc`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CENALLOC_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("cenalloc");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/cenalloc")
}

/// A built kernel and the key it is cached under.
pub struct Kernel {
    /// The bzImage.
    pub image: PathBuf,
    /// Hash of its inputs.
    pub key: String,
}

/// Installs missing packages and returns a built guest kernel (from the cache when its inputs
/// have not changed).
pub fn setup() -> Result<Kernel> {
    if let Some(image) = std::env::var_os("CENALLOC_KERNEL") {
        let image = PathBuf::from(image);
        if !image.is_file() {
            return Err(format!("CENALLOC_KERNEL={} is not a file", image.display()));
        }
        return Ok(Kernel {
            image,
            key: "custom".into(),
        });
    }
    packages::ensure()?;
    let fragment_path = workspace_root().join("vm/kernel.config");
    let fragment = std::fs::read_to_string(&fragment_path)
        .map_err(|e| format!("cannot read {}: {e}", fragment_path.display()))?;
    let version = candidate_version()?;
    let mut hasher = Sha256::new();
    hasher.update(format!("{SOURCE_PACKAGE}={version}\n"));
    hasher.update(fragment.as_bytes());
    let key: String = hasher
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = cache_dir().join("kernel").join(&key);
    let image = dir.join("bzImage");
    // One build at a time per machine: concurrent `cargo xtask` runs wait for it.
    std::fs::create_dir_all(cache_dir().join("kernel")).map_err(|e| e.to_string())?;
    let lock =
        std::fs::File::create(cache_dir().join("kernel/.lock")).map_err(|e| e.to_string())?;
    lock.lock()
        .map_err(|e| format!("cannot lock the kernel cache: {e}"))?;
    if image.is_file() {
        eprintln!(
            "xtask: guest kernel {version} cached at {}",
            image.display()
        );
        return Ok(Kernel { image, key });
    }
    eprintln!(
        "xtask: building guest kernel {SOURCE_PACKAGE} {version} (about 6 minutes on 2 cores)"
    );
    let started = std::time::Instant::now();
    build(&version, &fragment_path, &fragment, &dir)?;
    eprintln!(
        "xtask: kernel built in {:.0} s, cached at {}",
        started.elapsed().as_secs_f64(),
        image.display()
    );
    Ok(Kernel { image, key })
}

fn candidate_version() -> Result<String> {
    let policy = output(Command::new("apt-cache").args(["policy", SOURCE_PACKAGE]))?;
    policy
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate:"))
        .map(|v| v.trim().to_owned())
        .filter(|v| v != "(none)")
        .ok_or_else(|| format!("apt has no candidate for {SOURCE_PACKAGE}"))
}

/// Disk the kernel build takes at its peak: the source package, its unpacked tree and the
/// objects of the configured kernel.
const KERNEL_BUILD_BYTES: u64 = 3 << 30;

fn build(version: &str, fragment_path: &Path, fragment: &str, dest: &Path) -> Result<()> {
    let work = cache_dir().join("kernel").join("build");
    crate::disk::warn_if_low(
        &cache_dir(),
        KERNEL_BUILD_BYTES,
        "building the guest kernel",
    );
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    run(Command::new("apt-get")
        .current_dir(&work)
        .args(["download", "-q"])
        .arg(format!("{SOURCE_PACKAGE}={version}")))?;
    let deb = std::fs::read_dir(&work)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or("apt-get download left no .deb")?;
    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(work.join("pkg")))?;
    let tarball = work.join(format!("pkg/usr/src/{SOURCE_PACKAGE}.tar.xz"));
    run(Command::new("tar")
        .arg("-xf")
        .arg(&tarball)
        .arg("-C")
        .arg(&work))?;
    let src = work.join(SOURCE_PACKAGE);
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let make = |args: &[&str]| -> Result<()> {
        run(Command::new("make")
            .current_dir(&src)
            .args(args)
            .stdout(std::process::Stdio::null()))
    };
    make(&["tinyconfig"])?;
    run(Command::new("scripts/kconfig/merge_config.sh")
        .current_dir(&src)
        .args(["-m", ".config"])
        .arg(fragment_path)
        .stdout(std::process::Stdio::null()))?;
    make(&["olddefconfig"])?;
    let config = std::fs::read_to_string(src.join(".config")).map_err(|e| e.to_string())?;
    let lost: Vec<&str> = fragment
        .lines()
        .filter(|l| l.starts_with("CONFIG_") && l.ends_with("=y"))
        .filter(|l| !config.lines().any(|c| c == *l))
        .collect();
    if !lost.is_empty() {
        return Err(format!(
            "kernel config dropped options of vm/kernel.config: {}",
            lost.join(" ")
        ));
    }
    make(&[&format!("-j{jobs}"), "bzImage"])?;
    std::fs::create_dir_all(dest).map_err(|e| e.to_string())?;
    let tmp = dest.join("bzImage.tmp");
    std::fs::copy(src.join("arch/x86/boot/bzImage"), &tmp).map_err(|e| e.to_string())?;
    std::fs::copy(src.join(".config"), dest.join("config")).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, dest.join("bzImage")).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

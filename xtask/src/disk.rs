//! Free disk space, checked before the large writes (the guest kernel's source tree, a clean
//! build of the workspace) so that a full disk is named as the cause instead of surfacing as a
//! compiler's I/O error or a linker's bus error.

use std::path::Path;
use std::process::Command;

/// Bytes free for an unprivileged write on the file system holding `path` (or its nearest
/// existing ancestor); `None` if `df` cannot tell.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(existing)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)?
        .trim()
        .parse()
        .ok()
}

/// Warns on stderr when the file system holding `path` has less than `need` bytes free for
/// `purpose`.
pub fn warn_if_low(path: &Path, need: u64, purpose: &str) {
    const GIB: f64 = (1u64 << 30) as f64;
    if let Some(free) = free_bytes(path) {
        if free < need {
            eprintln!(
                "xtask: warning: {} has {:.1} GiB free; {purpose} needs about {:.1} GiB",
                path.display(),
                free as f64 / GIB,
                need as f64 / GIB
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_bytes_reads_df_for_a_path_not_yet_created() {
        let free = free_bytes(Path::new("/tmp/cenalloc-disk-check/not/yet")).expect("df answers");
        assert!(free > 0);
    }
}

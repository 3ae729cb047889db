//! Citations of the Linux source. What a backend knows about drivers it cannot test here (the
//! pitch and memory needs of SoC display drivers, which memory a V4L2 driver's queues need)
//! comes with the kernel file and symbol it was checked against, at [`KERNEL_TAG`], so a
//! reader can check it and a test can hold every entry to it.

use std::path::Path;

/// The kernel tag every citation refers to.
pub const KERNEL_TAG: &str = "v6.12";

/// A place in the kernel source that justifies a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Citation {
    /// Path in the kernel tree, e.g. `drivers/gpu/drm/vc4/vc4_drv.c`.
    pub file: &'static str,
    /// The function, structure or macro in that file.
    pub symbol: &'static str,
    /// What the source says there.
    pub says: &'static str,
}

impl Citation {
    /// A citation of `symbol` in `file`, which says `says`.
    pub const fn new(file: &'static str, symbol: &'static str, says: &'static str) -> Citation {
        Citation { file, symbol, says }
    }

    /// What is wrong with the citation's form, if anything: `file` must be a `.c` or `.h` file
    /// of the kernel tree under one of `dirs` (e.g. `drivers/media/`), relative, without `.`
    /// or `..` parts; `symbol` a C identifier; `says` not empty.
    pub fn malformed(&self, dirs: &[&str]) -> Option<String> {
        let path_ok = dirs.iter().any(|d| self.file.starts_with(d))
            && (self.file.ends_with(".c") || self.file.ends_with(".h"))
            && self.file.split('/').all(|part| {
                !part.is_empty()
                    && part != "."
                    && part != ".."
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            });
        let mut symbol = self.symbol.chars();
        let symbol_ok = symbol
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && symbol.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !path_ok {
            Some(format!("{} is not a source file under {dirs:?}", self.file))
        } else if !symbol_ok {
            Some(format!("{} is not a C identifier", self.symbol))
        } else if self.says.trim().is_empty() {
            Some(format!("{} in {} says nothing", self.symbol, self.file))
        } else {
            None
        }
    }

    /// Checks the citation against a kernel tree at `root`: the file exists and names the
    /// symbol. Returns the file's text (for further checks), or what is wrong.
    pub fn check_in_tree(&self, root: &Path) -> Result<String, String> {
        let text = std::fs::read_to_string(root.join(self.file))
            .map_err(|e| format!("{}: {e}", self.file))?;
        if text.contains(self.symbol) {
            Ok(text)
        } else {
            Err(format!("{} does not name {}", self.file, self.symbol))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_citations_say_why() {
        let good = Citation::new("drivers/gpu/drm/vc4/vc4_drv.c", "vc4_dumb_fixup_args", "x");
        assert_eq!(good.malformed(&["drivers/gpu/drm/"]), None);
        assert!(good.malformed(&["drivers/media/"]).is_some());
        let up = Citation::new("drivers/gpu/drm/../x.c", "f", "x");
        assert!(up.malformed(&["drivers/"]).is_some());
        let symbol = Citation::new("drivers/a.c", "1f", "x");
        assert!(symbol
            .malformed(&["drivers/"])
            .unwrap()
            .contains("identifier"));
        let silent = Citation::new("drivers/a.c", "f", " ");
        assert!(silent
            .malformed(&["drivers/"])
            .unwrap()
            .contains("says nothing"));
    }
}

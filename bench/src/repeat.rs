//! `cenalloc-bench --repeat CASE N`: one variant of a 32x32 buffer for vkms run N times and
//! nothing else, for counting what one buffer executes (`cargo xtask bench` runs it under
//! callgrind and strace).

use std::os::fd::AsFd as _;
use std::sync::Arc;
use std::time::Instant;

use cenalloc::{Importer, Usage};
use cenalloc_raw_ioctl::Card;

use crate::context::{xrgb, Bench, Res};
use crate::floor::{allocate_op, RawImporter};
use crate::measure::Op;

/// What `--repeat` runs: the raw floor and cenalloc, for a display-only and a heap buffer.
pub const REPEAT_CASES: [&str; 5] = [
    "raw-display-only",
    "cenalloc-display-only",
    "allocate-and-import-display-only",
    "raw-heap",
    "cenalloc-heap",
];

/// Who makes the buffers of a `--repeat` case.
#[derive(Clone, Copy)]
enum Maker {
    /// The raw floor.
    Raw,
    /// `allocate` of a plan made once.
    Planned,
    /// `allocate_and_import`, which plans for every buffer.
    AllocateAndImport,
}

/// Runs `op` `n` times: the one function a callgrind run collects in.
#[inline(never)]
fn counted_cycles(op: &mut Op<'_>, n: usize) -> Res<()> {
    for _ in 0..n {
        op()?;
    }
    Ok(())
}

impl Bench {
    /// Runs one variant of a 32x32 buffer for vkms `n` times and nothing else (after one
    /// warm-up run: first-use costs are not per-buffer costs), for counting what one buffer
    /// executes: `valgrind --tool=callgrind --toggle-collect='*counted_cycles'`, strace.
    /// Prints the time per buffer on stderr.
    pub fn repeat(&mut self, case: &str, n: usize) -> Res<()> {
        let (usage, maker) = match case {
            "raw-display-only" => (Usage::SCANOUT, Maker::Raw),
            "cenalloc-display-only" => (Usage::SCANOUT, Maker::Planned),
            "allocate-and-import-display-only" => (Usage::SCANOUT, Maker::AllocateAndImport),
            "raw-heap" => (Usage::SCANOUT | Usage::CPU_WRITE, Maker::Raw),
            "cenalloc-heap" => (Usage::SCANOUT | Usage::CPU_WRITE, Maker::Planned),
            other => {
                return Err(format!(
                    "--repeat {other}: not a case ({})",
                    REPEAT_CASES.join(", ")
                ))
            }
        };
        let importers: Vec<Arc<dyn Importer>> = vec![Arc::new(self.vkms.clone())];
        let request = xrgb(32, 32, usage);
        let plan = self.plan(&request, &importers)?;
        // The floor on cenalloc's open file, as in the timed comparisons.
        let file = self
            .vkms
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| format!("duplicating vkms' descriptor: {e}"))?;
        let raws = vec![RawImporter::Drm(Card::on_file(file, true))];
        let a = self.allocator.clone();
        let mut op = match maker {
            Maker::Raw => self.raw_op(&plan, &raws)?,
            Maker::Planned => allocate_op(&a, &plan),
            Maker::AllocateAndImport => Box::new(|| {
                a.allocate_and_import(&request, &importers)
                    .map(drop)
                    .map_err(|e| format!("allocate_and_import: {e}"))
            }),
        };
        op()?;
        let start = Instant::now();
        counted_cycles(&mut op, n)?;
        eprintln!(
            "{case}: {:.1} µs per buffer",
            start.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64
        );
        Ok(())
    }
}

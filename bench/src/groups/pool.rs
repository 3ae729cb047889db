//! Group `pool`: a pool hit against a fresh 8 MiB allocation.

use std::sync::Arc;

use cenalloc::{Importer, Pool, Usage};

use crate::context::{size_label, xrgb, Bench, Res};
use crate::measure::{compare, Op};
use crate::report::Target;

impl Bench {
    /// An 8 MiB buffer from a pool against a fresh one, heap-backed (target: the pool at least
    /// 100x faster) and display-only.
    pub fn group_pool(&mut self) -> Res<()> {
        let group = "pool hit vs fresh allocation (8 MiB, imported into vkms)";
        let display: Arc<dyn Importer> = Arc::new(self.vkms.clone());
        let importers = vec![display];
        // Backed up front (system heap, CPU-written): the fresh allocation the target is
        // about. Display-only (vkms's own dumb buffer) for comparison: its pages come on first
        // touch, so a fresh one has not allocated its 8 MiB yet.
        let kinds = [
            (
                Usage::SCANOUT | Usage::CPU_WRITE,
                "CPU-written, heap",
                Some(Target::AtLeast(100.0)),
            ),
            (Usage::SCANOUT, "vkms allocates, untouched", None),
        ];
        for (usage, memory, target) in kinds {
            let case = format!("{} · {memory}", size_label(2048, 1024));
            let request = xrgb(2048, 1024, usage);
            let pool = Pool::new(&self.allocator, request.clone(), importers.clone(), 2)
                .map_err(|e| format!("pool: {e}"))?;
            drop(pool.acquire().map_err(|e| format!("pool: {e}"))?);
            let a = self.allocator.clone();
            let timings = {
                let mut ops: Vec<Op<'_>> = vec![
                    Box::new(|| {
                        pool.acquire()
                            .map(drop)
                            .map_err(|e| format!("pool acquire: {e}"))
                    }),
                    Box::new(|| {
                        a.allocate_and_import(&request, &importers)
                            .map(drop)
                            .map_err(|e| format!("allocate_and_import: {e}"))
                    }),
                ];
                compare(self.budget, &mut ops)?
            };
            let names = ["pool hit", "fresh allocation"];
            self.record(group, &case, &names, timings);
            self.ratio(&case, names[1], names[0], target);
        }
        Ok(())
    }
}

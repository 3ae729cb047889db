//! Group `primitives`: what atomics, locks, reference counts, allocations, calls and a system
//! call cost where the benchmark runs, in a loop and once right after a display buffer's
//! ioctls.

use std::os::fd::AsFd as _;
use std::sync::Arc;

use cenalloc_raw_ioctl::Card;

use crate::context::{Bench, Res};
use crate::measure::Op;

/// A function the compiler keeps out of line: what a call and return cost.
#[inline(never)]
fn not_inlined(x: u64) -> u64 {
    x.wrapping_mul(3).wrapping_add(1)
}

impl Bench {
    /// What the building blocks of any user-space bookkeeping cost where the benchmarks run
    /// (under TCG, not in proportion to the host): each variant runs its operation 1000 times,
    /// so its time in µs is nanoseconds per operation.
    pub fn group_primitives(&mut self) -> Res<()> {
        use std::hint::black_box;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Mutex;
        const N: usize = 1000;
        let counter = AtomicUsize::new(0);
        let guarded = Mutex::new(0usize);
        let shared = Arc::new(0u64);
        let timings = {
            let mut ops: Vec<Op<'_>> = vec![
                Box::new(|| {
                    for i in 0..N {
                        black_box(i);
                    }
                    Ok(())
                }),
                Box::new(|| {
                    for _ in 0..N {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                }),
                Box::new(|| {
                    for _ in 0..N {
                        *guarded.lock().map_err(|e| e.to_string())? += 1;
                    }
                    Ok(())
                }),
                Box::new(|| {
                    for _ in 0..N {
                        black_box(shared.clone());
                    }
                    Ok(())
                }),
                Box::new(|| {
                    for i in 0..N {
                        black_box(Box::new(black_box(i)));
                    }
                    Ok(())
                }),
                Box::new(|| {
                    for _ in 0..N {
                        black_box(rustix::process::getppid());
                    }
                    Ok(())
                }),
            ];
            self.time(&mut ops)?
        };
        let names = [
            "loop step ×1000",
            "atomic add ×1000",
            "mutex lock + unlock ×1000",
            "Arc clone + drop ×1000",
            "Box alloc + free ×1000",
            "getppid system call ×1000",
        ];
        self.record_against_first(
            "primitives: ns per operation (µs per 1000)",
            "one thread, uncontended",
            &names,
            timings,
        );
        self.primitives_cold(&counter, &guarded, &shared)
    }

    /// The same operations once each right after a display buffer's ioctls (CREATE_DUMB,
    /// PRIME export, ADDFB2, RMFB, GEM_CLOSE, close), as they run on the allocation path:
    /// after the kernel's work, the emulator's caches no longer hold them, and each costs
    /// several times its cost in a loop.
    fn primitives_cold(
        &mut self,
        counter: &std::sync::atomic::AtomicUsize,
        guarded: &std::sync::Mutex<usize>,
        shared: &Arc<u64>,
    ) -> Res<()> {
        use std::hint::black_box;
        use std::sync::atomic::Ordering;
        let file = self
            .vkms
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| format!("duplicating vkms' descriptor: {e}"))?;
        let card = Card::on_file(file, true);
        let memory: Vec<u8> = (0..64 * 4096).map(|i| i as u8).collect();
        let display_buffer = || -> Res<()> {
            let dumb = card.export_dumb(32, 32).map_err(|e| e.to_string())?;
            let import = card.import_own(&dumb, 32, 32).map_err(|e| e.to_string())?;
            card.release(import).map_err(|e| e.to_string())
        };
        let timings = {
            let mut ops: Vec<Op<'_>> = vec![
                Box::new(&display_buffer),
                Box::new(|| {
                    display_buffer()?;
                    for _ in 0..10 {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                }),
                Box::new(|| {
                    display_buffer()?;
                    *guarded.lock().map_err(|e| e.to_string())? += 1;
                    Ok(())
                }),
                Box::new(|| {
                    display_buffer()?;
                    black_box(Box::new(black_box(1u64)));
                    Ok(())
                }),
                Box::new(|| {
                    display_buffer()?;
                    let mut x = 1u64;
                    for _ in 0..10 {
                        x = black_box(not_inlined(x));
                    }
                    black_box(x);
                    Ok(())
                }),
                Box::new(|| {
                    display_buffer()?;
                    for _ in 0..10 {
                        black_box(shared.clone());
                    }
                    Ok(())
                }),
                Box::new(|| {
                    display_buffer()?;
                    for i in 0..10 {
                        black_box(black_box(&memory)[i * 4096]);
                    }
                    Ok(())
                }),
                Box::new(|| {
                    display_buffer()?;
                    for i in 0..10 {
                        black_box(black_box(&memory)[i * 64]);
                    }
                    Ok(())
                }),
            ];
            self.time(&mut ops)?
        };
        let names = [
            "display buffer's ioctls alone",
            "+ 10 atomic adds",
            "+ 1 mutex lock + unlock",
            "+ 1 Box alloc + free",
            "+ 10 calls + returns",
            "+ 10 Arc clone + drop",
            "+ 10 reads, each in a page of its own",
            "+ 10 reads, each in a line of its own, one page",
        ];
        self.record_against_first(
            "primitives, cold: once after a display buffer's ioctls",
            "32x32 XR24 on vkms, raw",
            &names,
            timings,
        );
        Ok(())
    }
}

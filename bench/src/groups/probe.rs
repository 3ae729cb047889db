//! Group `probe`: discovering every device, cold (in fresh processes, `--probe-once`) and
//! with this process's caches warm.

use cenalloc::Allocator;

use crate::context::{Bench, Res};
use crate::measure::{compare, median_of, Budget};

impl Bench {
    /// Probing every device in `cold_runs` fresh processes (median), then in this one with
    /// its caches warm, reopening the devices and on the same handles.
    pub fn group_probe(&mut self, cold_runs: usize) -> Res<()> {
        let group = "probing every device";
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut cold = Vec::new();
        for _ in 0..cold_runs {
            let out = std::process::Command::new(&exe)
                .arg("--probe-once")
                .output()
                .map_err(|e| format!("{}: {e}", exe.display()))?;
            let text = String::from_utf8_lossy(&out.stdout);
            let us: f64 = text
                .trim()
                .parse()
                .map_err(|_| format!("--probe-once printed {text:?}"))?;
            cold.push(us);
        }
        let cold = median_of(cold);
        // Warm this process's caches (contiguity trials, import trials), then measure.
        probe_everything()?;
        let timings = compare(
            Budget {
                max_iterations: 20,
                ..self.budget
            },
            &mut [Box::new(|| probe_everything().map(drop))],
        )?;
        let devices = cenalloc_drm::enumerate();
        let reused = compare(
            self.budget,
            &mut [Box::new(|| {
                for d in &devices {
                    std::hint::black_box(d.probe());
                    std::hint::black_box(d.import_trial());
                }
                Ok(())
            })],
        )?;
        let case = format!(
            "{} DRM nodes + {} V4L2 nodes + heaps",
            devices.len(),
            cenalloc_v4l2::list_devices().len()
        );
        self.record(group, &case, &["cold (fresh process)"], vec![cold]);
        self.record(
            group,
            &case,
            &["cached (reopen, caches warm)", "cached (same handles)"],
            vec![timings[0].clone(), reused[0].clone()],
        );
        Ok(())
    }
}

/// Discovers the memory sources, opens and probes every DRM node (with its trial import)
/// and probes every V4L2 node; returns the number of devices.
pub fn probe_everything() -> Res<usize> {
    let a = Allocator::new();
    std::hint::black_box(a.sources().len());
    let drm = cenalloc_drm::enumerate();
    for d in &drm {
        std::hint::black_box(d.probe());
        std::hint::black_box(d.import_trial());
    }
    let v4l2 = cenalloc_v4l2::probe_all();
    Ok(drm.len() + v4l2.len())
}

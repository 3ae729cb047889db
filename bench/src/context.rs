//! What every benchmark group shares: the devices, the budget of rounds, the rows measured
//! so far, and how a group times its variants and records them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cenalloc::{Allocator, BufferRequest, Fourcc, Importer, Plan, Usage};
use cenalloc_drm::{DrmDevice, NodeKind};
use cenalloc_v4l2::{Device, Direction, V4l2Importer};

use crate::floor::shared_plan;
use crate::measure::{compare, compare_each, Budget, Op, Timing, SHORT_OPERATION};
use crate::placement::PLACEMENTS;
use crate::report::{Ratio, Row, Target};

/// Errors of the benchmark are messages for a person.
pub type Res<T> = Result<T, String>;

/// Everything the benchmarks share.
pub struct Bench {
    /// The allocator of the groups that keep one across their cases.
    pub allocator: Allocator,
    /// The rounds each comparison gets.
    pub budget: Budget,
    /// vkms' KMS node, opened for cenalloc.
    pub vkms: DrmDevice,
    /// Its path, for opening it anew.
    pub vkms_path: PathBuf,
    /// vivid-001's capture queue as a cenalloc importer.
    pub vivid: Arc<V4l2Importer>,
    /// Its node's path, for opening it anew.
    pub vivid_path: PathBuf,
    /// Every variant measured so far.
    pub rows: Vec<Row>,
    /// What the report says besides the rows (what could not be measured, and why).
    pub notes: Vec<String>,
}

/// A `w`×`h` XRGB8888 image for `usage`.
pub fn xrgb(w: u32, h: u32, usage: Usage) -> BufferRequest {
    BufferRequest::image(w, h, Fourcc::Xrgb8888, usage)
}

/// The case label of a `w`×`h` XRGB8888 image: its size and bytes.
pub fn size_label(w: u32, h: u32) -> String {
    let bytes = u64::from(w) * u64::from(h) * 4;
    let size = if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{} KiB", bytes >> 10)
    };
    format!("{w}x{h} XR24 ({size})")
}

impl Bench {
    /// Finds vkms and vivid-001 and opens them for cenalloc, with a new allocator.
    pub fn open(budget: Budget) -> Res<Bench> {
        let vkms = cenalloc_drm::device::find("vkms", NodeKind::Card).ok_or("no vkms card")?;
        let vkms_path = vkms.path().ok_or("vkms has no path")?.to_owned();
        let vivid_path = find_vivid_001()?;
        let vivid_dev = Device::open(&vivid_path).map_err(|e| e.to_string())?;
        Ok(Bench {
            allocator: Allocator::new(),
            budget,
            vkms,
            vkms_path,
            vivid: Arc::new(V4l2Importer::new(Arc::new(vivid_dev), Direction::Capture)),
            vivid_path,
            rows: Vec::new(),
            notes: Vec::new(),
        })
    }

    /// Records `timings` of `names` (no ratio).
    pub fn record(&mut self, group: &str, case: &str, names: &[&str], timings: Vec<Timing>) {
        for (name, timing) in names.iter().zip(timings) {
            self.rows.push(Row {
                group: group.into(),
                case: case.into(),
                variant: (*name).into(),
                timing,
                ratio: None,
            });
        }
    }

    /// Records `timings` of `names` and the ratio of each against the first (no target).
    pub fn record_against_first(
        &mut self,
        group: &str,
        case: &str,
        names: &[&str],
        timings: Vec<Timing>,
    ) {
        self.record(group, case, names, timings);
        for n in &names[1..] {
            self.ratio(case, n, names[0], None);
        }
    }

    /// Sets the ratio of the row `variant` of `case` against `versus`.
    pub fn ratio(&mut self, case: &str, variant: &str, versus: &str, target: Option<Target>) {
        let find = |rows: &[Row], v: &str| {
            rows.iter()
                .rposition(|r| r.case == case && r.variant == v)
                .map(|i| (i, rows[i].timing.clone()))
        };
        if let (Some((i, this)), Some((_, that))) =
            (find(&self.rows, variant), find(&self.rows, versus))
        {
            self.rows[i].ratio = Some(Ratio::new(&this, versus, &that, target));
        }
    }

    /// Times `ops` side by side: one operation of each per round when every one takes under
    /// [`SHORT_OPERATION`], else in batches.
    pub fn time(&self, ops: &mut [Op<'_>]) -> Res<Vec<Timing>> {
        self.time_within(self.budget, ops)
    }

    /// [`Bench::time`] for one of [`PLACEMENTS`] placements: its share of the rounds.
    pub fn time_placement(&self, ops: &mut [Op<'_>]) -> Res<Vec<Timing>> {
        self.time_within(self.budget.share(PLACEMENTS), ops)
    }

    /// Times `ops` side by side within `budget` (see [`Bench::time`]).
    pub fn time_within(&self, budget: Budget, ops: &mut [Op<'_>]) -> Res<Vec<Timing>> {
        let mut longest = Duration::ZERO;
        for op in ops.iter_mut() {
            op()?;
            let t = Instant::now();
            op()?;
            longest = longest.max(t.elapsed());
        }
        if longest < SHORT_OPERATION {
            compare_each(budget, ops)
        } else {
            compare(budget, ops)
        }
    }

    /// A plan, kept and allocated from for every buffer (as cenalloc's pool does).
    pub fn plan(&self, request: &BufferRequest, importers: &[Arc<dyn Importer>]) -> Res<Plan> {
        shared_plan(&self.allocator, request, importers)
    }

    /// Records why `case` of `group` was not measured, if `r` is an error.
    pub fn note_err(&mut self, group: &str, case: &str, r: Res<()>) {
        if let Err(e) = r {
            eprintln!("cenalloc-bench: {group} / {case}: {e}");
            self.notes
                .push(format!("{group} / {case}: not measured: {e}"));
        }
    }
}

/// The capture node of vivid's second instance (vivid-001).
fn find_vivid_001() -> Res<PathBuf> {
    cenalloc_v4l2::find_by_name("vivid-001-vid-cap").map_err(|e| e.to_string())
}

//! cenalloc-bench: what cenalloc costs over the kernel calls it makes and over libgbm,
//! measured side by side in one run. Meant for the guest (`cargo xtask bench`), where the
//! devices are: vkms, vgem, vivid-001, the system heap.
//!
//! Groups: allocate + export + import into vkms (4 KiB to 32 MiB; display-only buffers, which
//! vkms allocates itself, and CPU-written ones from the system heap) and into vivid-001,
//! cenalloc against the same raw ioctl sequence; a vkms scanout buffer against libgbm; probing
//! every device (cold, in fresh processes, and cached); a pool hit against a fresh 8 MiB
//! allocation; cost against the number of importers (1 to 6); what atomics, locks, reference
//! counts, allocations and a system call cost in this guest. Every figure is the median over
//! rounds; ratios are medians of per-round ratios of variants run back to back (see
//! `bench::measure`). The raw floor makes its calls on cenalloc's own open files, so the two
//! differ only in user space; a control variant runs the floor on its own opens.
//!
//! Usage: `cenalloc-bench [--quick] [--out DIR] [--only GROUP[,GROUP...]] [--one-of N]`;
//! writes `DIR/bench.json` and `DIR/bench.txt` (default DIR: `target/bench`); `--one-of N`
//! runs a 1/N share of the rounds, for N runs in separate processes that
//! `cenalloc-bench --out DIR --merge RUN_DIR...` merges (`cargo xtask bench` runs three).
//! `cenalloc-bench --repeat CASE N` runs one variant N times and nothing else, for
//! instruction and system-call counts (`cargo xtask bench` runs it under callgrind and strace).

use std::os::fd::{AsFd as _, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cenalloc::{Allocator, BufferRequest, Fourcc, Importer, Plan, Pool, SourceKind, Usage};
use cenalloc_drm::{DrmDevice, NodeKind};
use cenalloc_examples::bench::gbm_path::Gbm;
use cenalloc_examples::bench::measure::{
    clocksource, compare, compare_each, median_of, prefer_tsc, Budget, Op, Timing, MAX_ROUNDS,
    SHORT_OPERATION,
};
use cenalloc_examples::bench::placement::{self, HeapShift, PLACEMENTS};
use cenalloc_examples::bench::raw::{Card, Dumb, Heap, VideoQueue};
use cenalloc_examples::bench::report::{table, Ratio, Row, Target};
use cenalloc_examples::bench::runs;
use cenalloc_examples::bench::sys;
use cenalloc_v4l2::{Device, Direction, V4l2Importer};

type Res<T> = Result<T, String>;

/// Everything the benchmarks share.
struct Bench {
    allocator: Allocator,
    budget: Budget,
    vkms: DrmDevice,
    vkms_path: PathBuf,
    vivid: Arc<V4l2Importer>,
    vivid_path: PathBuf,
    rows: Vec<Row>,
    notes: Vec<String>,
}

/// What the raw floor allocated: a heap dma-buf and its stride, or a display's dumb buffer.
enum Allocated {
    Heap(OwnedFd, u32),
    Dumb(Dumb),
}

/// One raw importer: a KMS/render node or a V4L2 queue, opened without cenalloc.
enum RawImporter {
    Drm(Card),
    Video(VideoQueue),
}

/// A device both sides of a comparison open: a DRM node (KMS or not) or vivid-001's capture
/// queue.
enum Node {
    Drm { path: PathBuf, kms: bool },
    Video(PathBuf),
}

/// Both sides of a comparison. The raw floor makes its calls on cenalloc's own open files
/// (duplicated descriptors), so both sides meet the same kernel state and only user space
/// differs; `own` are the floor's separate opens of the same nodes, a control: the floor
/// against itself, on other files, shows the resolution of the comparison.
struct Sides {
    importers: Vec<Arc<dyn Importer>>,
    raws: Vec<RawImporter>,
    own: Vec<RawImporter>,
}

impl Sides {
    /// Opens every node anew for cenalloc (and the floor on the same files); no control.
    fn open(nodes: &[Node]) -> Res<Sides> {
        let mut sides = Sides {
            importers: Vec::with_capacity(nodes.len()),
            raws: Vec::with_capacity(nodes.len()),
            own: Vec::with_capacity(nodes.len()),
        };
        for node in nodes {
            let (importer, raw) = open_node(node)?;
            sides.importers.push(importer);
            sides.raws.push(raw);
        }
        Ok(sides)
    }

    /// [`Sides::open`], plus the control's own opens.
    fn with_control(nodes: &[Node]) -> Res<Sides> {
        let mut sides = Sides::open(nodes)?;
        sides.own = nodes.iter().map(open_raw).collect::<Res<_>>()?;
        Ok(sides)
    }
}

/// `node` opened anew as a cenalloc importer, and the raw floor on the same open file.
fn open_node(node: &Node) -> Res<(Arc<dyn Importer>, RawImporter)> {
    let dup = |fd: std::os::fd::BorrowedFd<'_>| {
        fd.try_clone_to_owned()
            .map_err(|e| format!("duplicating a descriptor: {e}"))
    };
    match node {
        Node::Drm { path, kms } => {
            let device = DrmDevice::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let card = Card::on_file(dup(device.as_fd())?, *kms);
            Ok((Arc::new(device), RawImporter::Drm(card)))
        }
        Node::Video(path) => {
            let camera = open_vivid(path)?;
            let (buf_type, pixelformat) = capture_format(&camera)?;
            let queue = VideoQueue::on_file(dup(camera.device().as_fd())?, buf_type, pixelformat);
            Ok((camera, RawImporter::Video(queue)))
        }
    }
}

/// The raw floor's own open of `node`.
fn open_raw(node: &Node) -> Res<RawImporter> {
    match node {
        Node::Drm { path, kms } => Bench::raw_card(path, *kms),
        Node::Video(path) => raw_video(path, &*open_vivid(path)?),
    }
}

/// vivid-001's capture queue as an importer.
fn open_vivid(path: &Path) -> Res<Arc<V4l2Importer>> {
    let device = Device::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Arc::new(V4l2Importer::new(
        Arc::new(device),
        Direction::Capture,
    )))
}

/// The buffer type of `camera`'s capture queue and its pixel format for XRGB8888.
fn capture_format(camera: &V4l2Importer) -> Res<(u32, u32)> {
    let buf_type = camera
        .device()
        .buf_type(Direction::Capture)
        .ok_or("vivid-001 has no capture queue")?;
    let pf = camera
        .pixel_format_for(Fourcc::Xrgb8888)
        .map_err(|e| e.to_string())?;
    Ok((buf_type, pf.0))
}

/// The raw floor's own open of `camera`'s capture queue at `path`.
fn raw_video(path: &Path, camera: &V4l2Importer) -> Res<RawImporter> {
    let (buf_type, pixelformat) = capture_format(camera)?;
    VideoQueue::open(path, buf_type, pixelformat)
        .map(RawImporter::Video)
        .map_err(|e| e.to_string())
}

/// `allocator`'s plan for `request` on `importers`, shared (as cenalloc's pool shares it) by
/// every buffer realized from it.
fn shared_plan(
    allocator: &Allocator,
    request: &BufferRequest,
    importers: &[Arc<dyn Importer>],
) -> Res<Arc<Plan>> {
    allocator
        .plan(request, importers)
        .map(Arc::new)
        .map_err(|e| format!("plan: {e}"))
}

/// The control variant: the raw floor on its own opens of the devices ([`Sides`]).
const OWN_OPEN: &str = "raw ioctls, own open (control)";

/// One raw cycle with (`true`) or without an extra step.
type RawCycle = Box<dyn Fn(bool) -> Res<()>>;

fn xrgb(w: u32, h: u32, usage: Usage) -> BufferRequest {
    BufferRequest::image(w, h, Fourcc::Xrgb8888, usage)
}

/// One allocation + import + free of a plan made earlier.
fn realize_op<'a>(
    a: &'a Allocator,
    plan: &'a Arc<Plan>,
    importers: &'a [Arc<dyn Importer>],
) -> Op<'a> {
    Box::new(move || {
        a.realize_plan(plan.clone(), importers)
            .map(drop)
            .map_err(|e| format!("realize_plan: {e}"))
    })
}

/// What `--repeat` runs: the raw floor and cenalloc, for a display-only and a heap buffer.
const REPEAT_CASES: [&str; 5] = [
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
    /// `realize_plan` of a plan made once.
    Planned,
    /// `allocate_and_import`, which finds the plan itself.
    AllocateAndImport,
}

/// A function the compiler keeps out of line: what a call and return cost.
#[inline(never)]
fn not_inlined(x: u64) -> u64 {
    x.wrapping_mul(3).wrapping_add(1)
}

/// Runs `op` `n` times: the one function a callgrind run collects in.
#[inline(never)]
fn counted_cycles(op: &mut Op<'_>, n: usize) -> Res<()> {
    for _ in 0..n {
        op()?;
    }
    Ok(())
}

fn size_label(w: u32, h: u32) -> String {
    let bytes = u64::from(w) * u64::from(h) * 4;
    let size = if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{} KiB", bytes >> 10)
    };
    format!("{w}x{h} XR24 ({size})")
}

impl Bench {
    fn record(&mut self, group: &str, case: &str, names: &[&str], timings: Vec<Timing>) {
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
    fn record_against_first(
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
    fn ratio(&mut self, case: &str, variant: &str, versus: &str, target: Option<Target>) {
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
    fn time(&self, ops: &mut [Op<'_>]) -> Res<Vec<Timing>> {
        self.time_within(self.budget, ops)
    }

    /// [`Bench::time`] for one of [`PLACEMENTS`] placements: its share of the rounds.
    fn time_placement(&self, ops: &mut [Op<'_>]) -> Res<Vec<Timing>> {
        self.time_within(self.budget.share(PLACEMENTS), ops)
    }

    fn time_within(&self, budget: Budget, ops: &mut [Op<'_>]) -> Res<Vec<Timing>> {
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

    /// A plan, shared (as cenalloc's pool shares it) by every buffer realized from it.
    fn plan(&self, request: &BufferRequest, importers: &[Arc<dyn Importer>]) -> Res<Arc<Plan>> {
        shared_plan(&self.allocator, request, importers)
    }

    /// The raw floor for `plan`: allocate from the same heap (or have the same display make a
    /// dumb buffer, export it and use its own handle), name the dma-buf (cenalloc names every
    /// buffer it allocates), import into each other raw importer, release, close.
    fn raw_op<'a>(&self, plan: &Plan, raws: &'a [RawImporter]) -> Res<Op<'a>> {
        let (size, w, h) = (plan.size, plan.layout.width, plan.layout.height);
        let name = dmabuf_name(plan)?;
        let allocate: Box<dyn Fn() -> Res<Allocated> + 'a> = match plan.source.kind {
            SourceKind::Heap => {
                let path = plan.source.path.clone().ok_or("the heap has no path")?;
                let heap = Heap::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                let stride = plan.layout.planes[0].stride as u32;
                Box::new(move || {
                    let fd = heap.alloc(size).map_err(|e| format!("heap alloc: {e}"))?;
                    Ok(Allocated::Heap(fd, stride))
                })
            }
            SourceKind::Device => {
                let exporter = plan.exporter.and_then(|i| raws.get(i));
                let Some(RawImporter::Drm(card)) = exporter else {
                    return Err(format!(
                        "{}: the raw floor exports from DRM only",
                        plan.source.name
                    ));
                };
                Box::new(move || {
                    card.export_dumb(w, h)
                        .map(Allocated::Dumb)
                        .map_err(|e| format!("CREATE_DUMB + PRIME export: {e}"))
                })
            }
            other => {
                return Err(format!(
                    "cenalloc chose {} ({other:?}); the raw floor covers heaps and dumb buffers",
                    plan.source.name
                ))
            }
        };
        let exporter = plan.exporter;
        Ok(Box::new(move || {
            let allocated = allocate()?;
            let (fd, stride) = match &allocated {
                Allocated::Heap(fd, stride) => (fd.as_fd(), *stride),
                Allocated::Dumb(dumb) => (dumb.fd.as_fd(), dumb.stride),
            };
            sys::dma_buf_set_name(fd, &name).map_err(|e| format!("SET_NAME: {e}"))?;
            let mut imports = Vec::with_capacity(raws.len());
            for (i, r) in raws.iter().enumerate() {
                match (r, &allocated) {
                    (RawImporter::Drm(card), Allocated::Dumb(dumb)) if exporter == Some(i) => {
                        imports.push((
                            card,
                            card.import_own(dumb, w, h)
                                .map_err(|e| format!("ADDFB2: {e}"))?,
                        ))
                    }
                    (RawImporter::Drm(card), _) => imports.push((
                        card,
                        card.import(fd, w, h, stride)
                            .map_err(|e| format!("PRIME/ADDFB2: {e}"))?,
                    )),
                    (RawImporter::Video(q), _) => {
                        q.check(w, h, size).map_err(|e| format!("TRY_FMT: {e}"))?
                    }
                }
            }
            for (card, import) in imports {
                card.release(import).map_err(|e| format!("release: {e}"))?;
            }
            drop(allocated);
            Ok(())
        }))
    }

    /// Runs one variant of a 32x32 buffer for vkms `n` times and nothing else (after one
    /// warm-up run: first-use costs are not per-buffer costs), for counting what one buffer
    /// executes: `valgrind --tool=callgrind --toggle-collect='*counted_cycles'`, strace.
    /// Prints the time per buffer on stderr.
    fn repeat(&mut self, case: &str, n: usize) -> Res<()> {
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
            Maker::Planned => realize_op(&a, &plan, &importers),
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

    fn raw_card(path: &Path, kms: bool) -> Res<RawImporter> {
        Card::open(path, kms)
            .map(RawImporter::Drm)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The raw floor; cenalloc with the plan made once (realize_plan, as a pool or swapchain
    /// does); allocate_and_import (which reuses the plan when every importer's constraints
    /// are stable, e.g. DRM devices); and, timed apart, planning anew for every buffer. Each
    /// comparison is measured over [`PLACEMENTS`] placements: `nodes` opened anew on both
    /// sides, a new allocator, the heap shifted.
    fn against_raw(
        &mut self,
        group: &str,
        case: &str,
        request: BufferRequest,
        nodes: &[Node],
    ) -> Res<()> {
        let mut planned_once = Vec::with_capacity(PLACEMENTS);
        let mut planned_each = Vec::with_capacity(PLACEMENTS);
        for index in 0..PLACEMENTS {
            let _shift = HeapShift::new(index);
            let Sides {
                importers,
                raws,
                own,
            } = Sides::with_control(nodes)?;
            let a = Allocator::new();
            let plan = shared_plan(&a, &request, &importers)?;
            // Two comparisons: planning for every buffer runs far more code than the rest,
            // and timed in the same rounds it would disturb (cool the caches of) its
            // neighbours.
            let mut ops: Vec<Op<'_>> = vec![
                self.raw_op(&plan, &raws)?,
                realize_op(&a, &plan, &importers),
                Box::new(|| {
                    a.allocate_and_import(&request, &importers)
                        .map(drop)
                        .map_err(|e| format!("allocate_and_import: {e}"))
                }),
                self.raw_op(&plan, &own)?,
            ];
            planned_once.push(self.time_placement(&mut ops)?);
            drop(ops);
            let mut ops: Vec<Op<'_>> = vec![
                self.raw_op(&plan, &raws)?,
                Box::new(|| {
                    let plan = a
                        .plan(&request, &importers)
                        .map_err(|e| format!("plan: {e}"))?;
                    a.realize_plan(plan, &importers)
                        .map(drop)
                        .map_err(|e| format!("realize_plan: {e}"))
                }),
            ];
            planned_each.push(self.time_placement(&mut ops)?);
        }
        let names = [
            "raw ioctls",
            "cenalloc (planned once)",
            "cenalloc allocate_and_import",
            OWN_OPEN,
        ];
        self.record(group, case, &names, placement::pool(planned_once));
        let target = Some(Target::AtMost(1.05));
        for variant in &names[1..3] {
            self.ratio(case, variant, names[0], target);
        }
        self.ratio(case, OWN_OPEN, names[0], None);
        // What planning costs (no target: allocate_and_import reuses plans).
        let names = ["raw ioctls (beside planning)", "cenalloc (plan each time)"];
        self.record_against_first(group, case, &names, placement::pool(planned_each));
        Ok(())
    }

    fn group_vkms_sizes(&mut self) -> Res<()> {
        let group = "allocate + export + import → vkms, by size";
        let nodes = [Node::Drm {
            path: self.vkms_path.clone(),
            kms: true,
        }];
        // What cenalloc does by default for each: a buffer only the display uses comes from
        // the display (a dumb buffer), one the CPU writes from the system heap.
        let kinds = [
            (Usage::SCANOUT, "vkms allocates"),
            (Usage::SCANOUT | Usage::CPU_WRITE, "CPU-written, heap"),
        ];
        for (usage, memory) in kinds {
            for (w, h) in [(32, 32), (128, 128), (512, 512), (1024, 2048), (2048, 4096)] {
                let case = format!("{} · {memory}", size_label(w, h));
                let r = self.against_raw(group, &case, xrgb(w, h, usage), &nodes);
                self.note_err(group, &case, r);
            }
        }
        Ok(())
    }

    fn group_overhead(&mut self) -> Res<()> {
        let group = "fixed cost: what cenalloc adds to the raw floor (→ vkms)";
        let (w, h) = (32, 32);
        let case = size_label(w, h);
        let nodes = [Node::Drm {
            path: self.vkms_path.clone(),
            kms: true,
        }];
        // A buffer the CPU writes: the heap path, whose floor is a heap allocation.
        let request = xrgb(w, h, Usage::SCANOUT | Usage::CPU_WRITE);
        let mut parts = Vec::with_capacity(PLACEMENTS);
        for index in 0..PLACEMENTS {
            let _shift = HeapShift::new(index);
            let Sides {
                importers, raws, ..
            } = Sides::open(&nodes)?;
            let [RawImporter::Drm(card)] = &raws[..] else {
                return Err("expected one DRM card".into());
            };
            let a = Allocator::new();
            let plan = shared_plan(&a, &request, &importers)?;
            let path = plan.source.path.clone().ok_or("not a heap")?;
            let heap = Heap::open(&path).map_err(|e| e.to_string())?;
            let (size, stride) = (plan.size, plan.layout.planes[0].stride as u32);
            let name = dmabuf_name(&plan)?;
            let raw_cycle = |set_name: bool| -> Res<()> {
                let fd = heap.alloc(size).map_err(|e| e.to_string())?;
                if set_name {
                    sys::dma_buf_set_name(std::os::fd::AsFd::as_fd(&fd), &name)
                        .map_err(|e| e.to_string())?;
                }
                let import = card
                    .import(std::os::fd::AsFd::as_fd(&fd), w, h, stride)
                    .map_err(|e| e.to_string())?;
                card.release(import).map_err(|e| e.to_string())
            };
            let mut ops: Vec<Op<'_>> = vec![
                Box::new(|| raw_cycle(true)),
                Box::new(|| raw_cycle(false)),
                Box::new(|| {
                    let buffer = a.allocate(&plan, &importers).map_err(|e| e.to_string())?;
                    let import = card
                        .import(buffer.fd(), w, h, stride)
                        .map_err(|e| e.to_string())?;
                    card.release(import).map_err(|e| e.to_string())
                }),
                Box::new(|| {
                    let buffer = a.allocate(&plan, &importers).map_err(|e| e.to_string())?;
                    importers[0]
                        .import(&buffer)
                        .map(drop)
                        .map_err(|e| e.to_string())
                }),
                realize_op(&a, &plan, &importers),
            ];
            parts.push(self.time_placement(&mut ops)?);
        }
        let names = [
            "raw ioctls (SET_NAME included)",
            "raw ioctls without SET_NAME",
            "cenalloc allocate + raw import",
            "cenalloc allocate + cenalloc-drm import",
            "cenalloc realize_plan (planned once)",
        ];
        self.record_against_first(group, &case, &names, placement::pool(parts));
        self.overhead_dumb(group)?;
        self.overhead_v4l2(group)
    }

    /// The same for a display-only buffer, which vkms allocates: the raw floor (CREATE_DUMB,
    /// PRIME export, SET_NAME, ADDFB2 on the dumb handle), the floor with the PRIME import of
    /// its own dma-buf that cenalloc made before it recognised its own buffers, and cenalloc.
    fn overhead_dumb(&mut self, group: &str) -> Res<()> {
        let (w, h) = (32, 32);
        let case = format!("{} · vkms allocates", size_label(w, h));
        let raw_for = |plan: &Plan, raw: RawImporter| -> Res<RawCycle> {
            if plan.source.kind != SourceKind::Device {
                return Err(format!(
                    "expected vkms to allocate, the plan says {:?}",
                    plan.source
                ));
            }
            let RawImporter::Drm(card) = raw else {
                return Err("expected a DRM card".into());
            };
            let name = dmabuf_name(plan)?;
            Ok(Box::new(move |prime_import: bool| -> Res<()> {
                let dumb = card.export_dumb(w, h).map_err(|e| e.to_string())?;
                sys::dma_buf_set_name(dumb.fd.as_fd(), &name).map_err(|e| e.to_string())?;
                let import = if prime_import {
                    card.import(dumb.fd.as_fd(), w, h, dumb.stride)
                } else {
                    card.import_own(&dumb, w, h)
                };
                card.release(import.map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())
            }))
        };
        let nodes = [Node::Drm {
            path: self.vkms_path.clone(),
            kms: true,
        }];
        self.floor_step_and_cenalloc(
            group,
            &case,
            "raw + PRIME import of its own dma-buf",
            &nodes,
            &xrgb(w, h, Usage::SCANOUT),
            &raw_for,
        )
    }

    /// The same for vivid-001: the raw floor, the floor plus listing the queue's formats
    /// (VIDIOC_ENUM_FMT until EINVAL, which cenalloc does once per device, not per import),
    /// and cenalloc.
    fn overhead_v4l2(&mut self, group: &str) -> Res<()> {
        let (w, h) = (320, 180);
        let case = format!("{} → vivid-001", size_label(w, h));
        let (vivid, vivid_path) = (self.vivid.clone(), self.vivid_path.clone());
        let formats = match raw_video(&vivid_path, &vivid)? {
            RawImporter::Video(queue) => queue.enumerate_formats(),
            RawImporter::Drm(_) => return Err("expected a V4L2 queue".into()),
        };
        let raw_for = |plan: &Plan, raw: RawImporter| -> Res<RawCycle> {
            let path = plan.source.path.clone().ok_or("not a heap")?;
            let heap = Heap::open(&path).map_err(|e| e.to_string())?;
            let size = plan.size;
            let RawImporter::Video(queue) = raw else {
                return Err("expected a V4L2 queue".into());
            };
            let name = dmabuf_name(plan)?;
            Ok(Box::new(move |enum_fmt: bool| -> Res<()> {
                let fd = heap.alloc(size).map_err(|e| e.to_string())?;
                sys::dma_buf_set_name(std::os::fd::AsFd::as_fd(&fd), &name)
                    .map_err(|e| e.to_string())?;
                if enum_fmt {
                    std::hint::black_box(queue.enumerate_formats());
                }
                queue.check(w, h, size).map_err(|e| e.to_string())?;
                drop(fd);
                Ok(())
            }))
        };
        let nodes = [Node::Video(self.vivid_path.clone())];
        self.floor_step_and_cenalloc(
            group,
            &case,
            &format!("raw + ENUM_FMT ×{formats}"),
            &nodes,
            &xrgb(w, h, Usage::CAMERA_WRITE),
            &raw_for,
        )
    }

    /// Times the raw floor (`raw(false)`), the floor with one more step (`raw(true)`, named
    /// `step`) and cenalloc realizing its plan for `request` on `nodes`, side by side, each
    /// against the floor, over [`PLACEMENTS`] placements (`raw_for` makes the raw cycle of
    /// each placement's plan, on the placement's raw importer of the one node).
    fn floor_step_and_cenalloc(
        &mut self,
        group: &str,
        case: &str,
        step: &str,
        nodes: &[Node],
        request: &BufferRequest,
        raw_for: &dyn Fn(&Plan, RawImporter) -> Res<RawCycle>,
    ) -> Res<()> {
        let mut parts = Vec::with_capacity(PLACEMENTS);
        for index in 0..PLACEMENTS {
            let _shift = HeapShift::new(index);
            let Sides {
                importers, raws, ..
            } = Sides::open(nodes)?;
            let a = Allocator::new();
            let plan = shared_plan(&a, request, &importers)?;
            let raw = raws.into_iter().next().ok_or("no node to measure")?;
            let raw = raw_for(&plan, raw)?;
            let mut ops: Vec<Op<'_>> = vec![
                Box::new(|| raw(false)),
                Box::new(|| raw(true)),
                realize_op(&a, &plan, &importers),
            ];
            parts.push(self.time_placement(&mut ops)?);
        }
        let names = [
            "raw ioctls (SET_NAME included)",
            step,
            "cenalloc realize_plan (planned once)",
        ];
        self.record_against_first(group, case, &names, placement::pool(parts));
        Ok(())
    }

    fn group_vivid_sizes(&mut self) -> Res<()> {
        let group = "allocate + export + import → vivid-001, by size";
        let nodes = [Node::Video(self.vivid_path.clone())];
        // vivid's default input (a webcam) offers discrete frame sizes.
        for (w, h) in [
            (320, 180),
            (640, 480),
            (1280, 720),
            (1920, 1080),
            (3840, 2160),
        ] {
            let r = self.against_raw(
                group,
                &size_label(w, h),
                xrgb(w, h, Usage::CAMERA_WRITE),
                &nodes,
            );
            self.note_err(group, &size_label(w, h), r);
        }
        Ok(())
    }

    fn group_scaling_importers(&mut self) -> Res<()> {
        let group = "allocate + export + import 1920x1080 XR24, by number of importers";
        // Distinct fds: each has its own GEM handle space, so every import is real work.
        let vgem = cenalloc_drm::device::find("vgem", NodeKind::Card)
            .ok_or("no vgem card (needed for the importer scaling)")?;
        let vgem_path = vgem.path().ok_or("vgem has no path")?.to_owned();
        let kms = |path: &Path| Node::Drm {
            path: path.to_owned(),
            kms: true,
        };
        let render = |path: &Path| Node::Drm {
            path: path.to_owned(),
            kms: false,
        };
        let nodes = [
            kms(&self.vkms_path),
            Node::Video(self.vivid_path.clone()),
            render(&vgem_path),
            kms(&self.vkms_path),
            render(&vgem_path),
            kms(&self.vkms_path),
        ];
        let labels = [
            "vkms",
            "+ vivid-001",
            "+ vgem",
            "+ vkms #2",
            "+ vgem #2",
            "+ vkms #3",
        ];
        for (n, label) in labels.iter().enumerate() {
            let case = format!("{} importer(s): {label}", n + 1);
            let request = xrgb(1920, 1080, Usage::SCANOUT | Usage::CAMERA_WRITE);
            let r = self.against_raw(group, &case, request, &nodes[..=n]);
            self.note_err(group, &case, r);
        }
        Ok(())
    }

    fn group_gbm(&mut self) -> Res<()> {
        let group = "vkms scanout buffer: cenalloc vs libgbm";
        let (w, h) = (1920, 1080);
        let case = size_label(w, h);
        let gbm = Gbm::open(&self.vkms_path).map_err(|e| {
            format!("gbm_create_device on vkms: {e} (Mesa has no GBM driver for vkms here)")
        })?;
        let display_raw = Card::open(&self.vkms_path, true).map_err(|e| e.to_string())?;
        let display: Arc<dyn Importer> = Arc::new(self.vkms.clone());
        let a = self.allocator.clone();
        let importers = vec![display];
        // Display-only (vkms allocates, as with GBM) and declared CPU-written (system heap).
        let display_only = xrgb(w, h, Usage::SCANOUT);
        let cpu_written = xrgb(w, h, Usage::SCANOUT | Usage::CPU_WRITE);
        let cenalloc_cycle = |request: &BufferRequest, touch: bool| -> Res<()> {
            let shared = a
                .allocate_and_import(request, &importers)
                .map_err(|e| format!("allocate_and_import: {e}"))?;
            if touch {
                let b = shared.buffer();
                sys::touch_pages(b.fd(), b.layout().size as usize)
                    .map_err(|e| format!("touching the cenalloc buffer: {e}"))?;
            }
            Ok(())
        };
        let timings = {
            let mut ops: Vec<Op<'_>> = vec![
                Box::new(|| gbm.scanout_cycle(&display_raw, w, h, false)),
                Box::new(|| cenalloc_cycle(&display_only, false)),
                Box::new(|| gbm.scanout_cycle(&display_raw, w, h, true)),
                Box::new(|| cenalloc_cycle(&cpu_written, true)),
                Box::new(|| cenalloc_cycle(&display_only, true)),
            ];
            self.time(&mut ops).map_err(|e| {
                format!(
                    "{e} (libgbm backend {:?}, vkms has no Mesa driver of its own)",
                    gbm.backend()
                )
            })?
        };
        let names = [
            "libgbm",
            "cenalloc allocate_and_import",
            "libgbm, every page written",
            "cenalloc CPU_WRITE, every page written",
            "cenalloc display-only, every page written",
        ];
        self.record(group, &case, &names, timings);
        self.ratio(&case, names[1], names[0], Some(Target::AtMost(1.0)));
        self.ratio(&case, names[3], names[2], Some(Target::AtMost(1.0)));
        self.ratio(&case, names[4], names[2], None);
        self.notes.push(format!(
            "libgbm backend: {:?} (GBM_BACKEND={:?}); vkms has no Mesa DRI driver, so \
             libgbm's DRI backend falls back to kms_swrast (dumb buffers)",
            gbm.backend(),
            std::env::var("GBM_BACKEND").ok()
        ));
        Ok(())
    }

    /// What the building blocks of any user-space bookkeeping cost where the benchmarks run
    /// (under TCG, not in proportion to the host): each variant runs its operation 1000 times,
    /// so its time in µs is nanoseconds per operation.
    fn group_primitives(&mut self) -> Res<()> {
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

    fn group_pool(&mut self) -> Res<()> {
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

    fn group_probe(&mut self, cold_runs: usize) -> Res<()> {
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

    fn note_err(&mut self, group: &str, case: &str, r: Res<()>) {
        if let Err(e) = r {
            eprintln!("cenalloc-bench: {group} / {case}: {e}");
            self.notes
                .push(format!("{group} / {case}: not measured: {e}"));
        }
    }
}

/// Discovers the memory sources, opens and probes every DRM node (with its trial import)
/// and probes every V4L2 node; returns the number of devices.
/// The name cenalloc gives the plan's buffers, as the C string SET_NAME takes (31 bytes kept).
fn dmabuf_name(plan: &Plan) -> Res<std::ffi::CString> {
    let bytes: Vec<u8> = plan.name.bytes().filter(|b| *b != 0).take(31).collect();
    std::ffi::CString::new(bytes).map_err(|e| e.to_string())
}

fn probe_everything() -> Res<usize> {
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

fn find_vivid_001() -> Res<PathBuf> {
    cenalloc_v4l2::find_by_name("vivid-001-vid-cap").map_err(|e| e.to_string())
}

fn run(args: &[String]) -> Res<i32> {
    let mut out = PathBuf::from("target/bench");
    let mut quick = false;
    let mut only: Option<String> = None;
    let mut repeat: Option<(String, usize)> = None;
    let mut one_of = 1usize;
    let mut merge: Vec<PathBuf> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--probe-once" => {
                let t = Instant::now();
                probe_everything()?;
                println!("{}", t.elapsed().as_secs_f64() * 1e6);
                return Ok(0);
            }
            "--quick" => quick = true,
            "--repeat" => {
                let case = args.get(i + 1).ok_or("--repeat needs a case and a count")?;
                let n = args.get(i + 2).ok_or("--repeat needs a count")?;
                let n = n
                    .parse()
                    .map_err(|_| format!("--repeat {case} {n}: not a count"))?;
                repeat = Some((case.clone(), n));
                i += 2;
            }
            "--out" => {
                i += 1;
                out = PathBuf::from(args.get(i).ok_or("--out needs a directory")?);
            }
            "--only" => {
                i += 1;
                only = Some(args.get(i).ok_or("--only needs a group")?.clone());
            }
            "--one-of" => {
                i += 1;
                let n = args.get(i).ok_or("--one-of needs a number of runs")?;
                one_of = n
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("--one-of {n}: not a number of runs"))?;
            }
            "--merge" => {
                merge = args[i + 1..].iter().map(PathBuf::from).collect();
                if merge.is_empty() {
                    return Err("--merge needs the directories of the runs".into());
                }
                i = args.len();
                continue;
            }
            "-h" | "--help" => {
                println!(
                    "usage: cenalloc-bench [--quick] [--out DIR] [--only GROUP[,GROUP...]] [--one-of N] (groups: vkms overhead vivid gbm pool importers primitives probe)\n       cenalloc-bench [--out DIR] --merge RUN_DIR...\n       cenalloc-bench --repeat CASE N (cases: {})",
                    REPEAT_CASES.join(" ")
                );
                return Ok(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
        i += 1;
    }
    if !merge.is_empty() {
        return merge_runs(&merge, &out);
    }
    let budget = if quick {
        Budget {
            batches: 3,
            batch_time: Duration::from_millis(10),
            max_iterations: 200,
        }
    } else {
        Budget {
            batches: 31,
            batch_time: Duration::from_millis(20),
            max_iterations: 2000,
        }
    }
    // One of several runs merged later: its share of the rounds.
    .share(one_of);
    let vkms = cenalloc_drm::device::find("vkms", NodeKind::Card).ok_or("no vkms card")?;
    let vkms_path = vkms.path().ok_or("vkms has no path")?.to_owned();
    let vivid_path = find_vivid_001()?;
    let vivid_dev = Device::open(&vivid_path).map_err(|e| e.to_string())?;
    let mut bench = Bench {
        allocator: Allocator::new(),
        budget,
        vkms,
        vkms_path,
        vivid: Arc::new(V4l2Importer::new(Arc::new(vivid_dev), Direction::Capture)),
        vivid_path,
        rows: Vec::new(),
        notes: Vec::new(),
    };
    if let Some((case, n)) = repeat {
        bench.repeat(&case, n)?;
        return Ok(0);
    }
    let clock_before = prefer_tsc();
    if clock_before != "tsc" {
        // Jiffies tick every 4 ms: a 60 µs operation would read as 0 or 4000 µs.
        return Err(format!(
            "clocksource is {clock_before}, not tsc: timings would be quantised to a jiffy; \
             boot with tsc=reliable (cargo xtask bench does) and run again"
        ));
    }
    let started = Instant::now();
    type Group = fn(&mut Bench) -> Res<()>;
    let groups: [(&str, Group); 8] = [
        ("vkms", Bench::group_vkms_sizes),
        ("overhead", Bench::group_overhead),
        ("vivid", Bench::group_vivid_sizes),
        ("gbm", Bench::group_gbm),
        ("pool", Bench::group_pool),
        ("importers", Bench::group_scaling_importers),
        ("primitives", Bench::group_primitives),
        ("probe", |b| {
            b.group_probe(if b.budget.batches > 3 { 7 } else { 3 })
        }),
    ];
    for (name, group) in groups {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|g| g == name))
        {
            continue;
        }
        let t = Instant::now();
        let r = group(&mut bench);
        eprintln!(
            "cenalloc-bench: {name} done in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        bench.note_err(name, "(group)", r);
    }
    let clock_after = clocksource();
    if clock_after != clock_before {
        bench.notes.push(format!(
            "the clocksource changed from {clock_before} to {clock_after} during the run: \
             timings after the change are coarse (boot the guest with tsc=reliable)"
        ));
    }
    let header = format!(
        "cenalloc-bench: {} rounds, each running every variant of a case back to back for \
         ≥ {} ms (cases whose every variant takes under {} ms: up to {} rounds of one \
         operation per variant); times are medians over rounds, ratios medians of the \
         per-round ratios; clocksource {}; total {:.0} s\n",
        budget.batches,
        budget.batch_time.as_millis(),
        SHORT_OPERATION.as_millis(),
        MAX_ROUNDS,
        clock_after,
        started.elapsed().as_secs_f64()
    );
    let json = serde_json::json!({
        "budget": {
            "batches": budget.batches,
            "batch_time_ms": budget.batch_time.as_millis() as u64,
            "max_iterations": budget.max_iterations,
        },
        "in_guest": std::env::var("CENALLOC_IN_GUEST").is_ok(),
        "clocksource": { "before": clock_before, "after": clock_after },
    });
    write_report(&out, &header, &bench.rows, &bench.notes, json)?;
    Ok(0)
}

/// Writes `out/bench.txt` (`header`, the table, the targets met and missed, the notes) and
/// `out/bench.json` (`json` with the rows and notes added).
fn write_report(
    out: &Path,
    header: &str,
    rows: &[Row],
    notes: &[String],
    mut json: serde_json::Value,
) -> Res<()> {
    let mut text = header.to_owned();
    text.push_str(&table(rows));
    let count = |met: bool| {
        rows.iter()
            .filter(|r| r.ratio.as_ref().and_then(|q| q.met) == Some(met))
            .count()
    };
    text.push_str(&format!(
        "\ntargets: {} met, {} missed\n",
        count(true),
        count(false)
    ));
    for n in notes {
        text.push_str(&format!("note: {n}\n"));
    }
    print!("{text}");
    json["rows"] = serde_json::to_value(rows).map_err(|e| e.to_string())?;
    json["notes"] = serde_json::to_value(notes).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let write = |name: &str, data: String| {
        let p = out.join(name);
        std::fs::write(&p, data).map_err(|e| format!("{}: {e}", p.display()))
    };
    write(
        "bench.json",
        serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?,
    )?;
    write("bench.txt", text)?;
    eprintln!("cenalloc-bench: wrote {}/bench.{{json,txt}}", out.display());
    Ok(())
}

/// Merges the results of runs in separate processes (`dirs`, each holding a `bench.json`) into
/// `out` ([`runs::merge`]).
fn merge_runs(dirs: &[PathBuf], out: &Path) -> Res<i32> {
    let mut rows = Vec::with_capacity(dirs.len());
    let mut notes: Vec<String> = Vec::new();
    let mut runs_json = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let path = dir.join("bench.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let run_rows: Vec<Row> = serde_json::from_value(value["rows"].take())
            .map_err(|e| format!("{}: rows: {e}", path.display()))?;
        let run_notes: Vec<String> =
            serde_json::from_value(value["notes"].take()).unwrap_or_default();
        for n in run_notes {
            if !notes.contains(&n) {
                notes.push(n);
            }
        }
        rows.push(run_rows);
        runs_json.push(value);
    }
    let header = format!(
        "cenalloc-bench: {} runs in separate processes, merged (each its share of the rounds; \
         see each run's bench.txt); times are medians of the runs' medians, ratios medians \
         of the runs' ratios, [runs ...] each run's\n",
        dirs.len()
    );
    let json = serde_json::json!({ "runs": runs_json });
    write_report(out, &header, &runs::merge(&rows), &notes, json)?;
    Ok(0)
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("cenalloc-bench: {e}");
            std::process::exit(1);
        }
    }
}

//! The raw floor beside cenalloc: both sides of a comparison opened on the same nodes, the
//! floor's cycle for a cenalloc plan (the same kernel calls through `cenalloc-raw-ioctl`), and
//! the comparison of cenalloc against it that several groups run.

use std::os::fd::{AsFd as _, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cenalloc::{Allocator, BufferRequest, Fourcc, Importer, Plan, SourceKind};
use cenalloc_drm::DrmDevice;
use cenalloc_raw_ioctl::{dmabuf, Card, Dumb, Heap, VideoQueue};
use cenalloc_v4l2::{Device, Direction, V4l2Importer};

use crate::context::{Bench, Res};
use crate::measure::Op;
use crate::placement::{self, HeapShift, PLACEMENTS};
use crate::report::Target;

/// What the raw floor allocated: a heap dma-buf and its stride, or a display's dumb buffer.
enum Allocated {
    Heap(OwnedFd, u32),
    Dumb(Dumb),
}

/// One raw importer: a KMS/render node or a V4L2 queue, opened without cenalloc.
pub enum RawImporter {
    Drm(Card),
    Video(VideoQueue),
}

/// A device both sides of a comparison open: a DRM node (KMS or not) or vivid-001's capture
/// queue.
pub enum Node {
    Drm { path: PathBuf, kms: bool },
    Video(PathBuf),
}

/// Both sides of a comparison. The raw floor makes its calls on cenalloc's own open files
/// (duplicated descriptors), so both sides meet the same kernel state and only user space
/// differs; `own` are the floor's separate opens of the same nodes, a control: the floor
/// against itself, on other files, shows the resolution of the comparison.
pub struct Sides {
    pub importers: Vec<Arc<dyn Importer>>,
    pub raws: Vec<RawImporter>,
    pub own: Vec<RawImporter>,
}

impl Sides {
    /// Opens every node anew for cenalloc (and the floor on the same files); no control.
    pub fn open(nodes: &[Node]) -> Res<Sides> {
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
    pub fn with_control(nodes: &[Node]) -> Res<Sides> {
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
        Node::Drm { path, kms } => raw_card(path, *kms),
        Node::Video(path) => raw_video(path, &*open_vivid(path)?),
    }
}

/// The raw floor's own open of the DRM node at `path`.
fn raw_card(path: &Path, kms: bool) -> Res<RawImporter> {
    Card::open(path, kms)
        .map(RawImporter::Drm)
        .map_err(|e| format!("{}: {e}", path.display()))
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
pub fn raw_video(path: &Path, camera: &V4l2Importer) -> Res<RawImporter> {
    let (buf_type, pixelformat) = capture_format(camera)?;
    VideoQueue::open(path, buf_type, pixelformat)
        .map(RawImporter::Video)
        .map_err(|e| e.to_string())
}

/// `allocator`'s plan for `request` on `importers`, kept (as cenalloc's pool keeps it) for
/// every buffer allocated from it.
pub fn shared_plan(
    allocator: &Allocator,
    request: &BufferRequest,
    importers: &[Arc<dyn Importer>],
) -> Res<Plan> {
    allocator
        .plan(request, importers)
        .map_err(|e| format!("plan: {e}"))
}

/// The control variant: the raw floor on its own opens of the devices ([`Sides`]).
const OWN_OPEN: &str = "raw ioctls, own open (control)";

/// One allocation + import + free of a plan made earlier.
pub fn allocate_op<'a>(a: &'a Allocator, plan: &'a Plan) -> Op<'a> {
    Box::new(move || {
        a.allocate(plan)
            .map(drop)
            .map_err(|e| format!("allocate: {e}"))
    })
}

/// The name cenalloc gives the plan's buffers, as the C string SET_NAME takes (31 bytes kept).
pub fn dmabuf_name(plan: &Plan) -> Res<std::ffi::CString> {
    let bytes: Vec<u8> = plan.name().bytes().filter(|b| *b != 0).take(31).collect();
    std::ffi::CString::new(bytes).map_err(|e| e.to_string())
}

impl Bench {
    /// The raw floor for `plan`: allocate from the same heap (or have the same display make a
    /// dumb buffer, export it and use its own handle), name the dma-buf (cenalloc names every
    /// buffer it allocates), import into each other raw importer, release, close.
    pub fn raw_op<'a>(&self, plan: &Plan, raws: &'a [RawImporter]) -> Res<Op<'a>> {
        let (size, w, h) = (plan.size(), plan.layout().width(), plan.layout().height());
        let name = dmabuf_name(plan)?;
        let allocate: Box<dyn Fn() -> Res<Allocated> + 'a> = match plan.source().kind {
            SourceKind::Heap => {
                let path = plan.source().path.clone().ok_or("the heap has no path")?;
                let heap = Heap::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                let stride = plan.layout().planes()[0].stride as u32;
                Box::new(move || {
                    let fd = heap.alloc(size).map_err(|e| format!("heap alloc: {e}"))?;
                    Ok(Allocated::Heap(fd, stride))
                })
            }
            SourceKind::Device => {
                let exporter = plan.exporter().and_then(|i| raws.get(i));
                let Some(RawImporter::Drm(card)) = exporter else {
                    return Err(format!(
                        "{}: the raw floor exports from DRM only",
                        plan.source().name
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
                    plan.source().name
                ))
            }
        };
        let exporter = plan.exporter();
        Ok(Box::new(move || {
            let allocated = allocate()?;
            let (fd, stride) = match &allocated {
                Allocated::Heap(fd, stride) => (fd.as_fd(), *stride),
                Allocated::Dumb(dumb) => (dumb.fd.as_fd(), dumb.stride),
            };
            dmabuf::set_name(fd, &name).map_err(|e| format!("SET_NAME: {e}"))?;
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

    /// The raw floor; cenalloc with the plan made once (`allocate` of a kept plan, as a pool
    /// or swapchain does); `allocate_and_import`, which plans for every buffer; and, timed
    /// apart, planning anew for every buffer beside the floor alone. Each
    /// comparison is measured over [`PLACEMENTS`] placements: `nodes` opened anew on both
    /// sides, a new allocator, the heap shifted.
    pub fn against_raw(
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
                allocate_op(&a, &plan),
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
                    a.allocate(&plan)
                        .map(drop)
                        .map_err(|e| format!("allocate: {e}"))
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
        self.ratio(case, names[1], names[0], Some(Target::AtMost(1.10)));
        // Planning is reported, not held to the floor: it asks every device again.
        self.ratio(case, names[2], names[0], None);
        self.ratio(case, OWN_OPEN, names[0], None);
        // What planning costs.
        let names = ["raw ioctls (beside planning)", "cenalloc (plan each time)"];
        self.record_against_first(group, case, &names, placement::pool(planned_each));
        Ok(())
    }
}

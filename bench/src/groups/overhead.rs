//! Group `overhead`: the fixed cost of a small buffer, taken apart: what cenalloc adds to the
//! raw floor step by step, for a heap buffer and a display-only one imported into vkms and for
//! a camera buffer checked by vivid-001.

use std::os::fd::AsFd as _;

use cenalloc::{Allocator, BufferRequest, Plan, SourceKind, Usage};
use cenalloc_raw_ioctl::{dmabuf, Heap};

use crate::context::{size_label, xrgb, Bench, Res};
use crate::floor::{allocate_op, dmabuf_name, raw_video, shared_plan, Node, RawImporter, Sides};
use crate::measure::Op;
use crate::placement::{self, HeapShift, PLACEMENTS};

/// One raw cycle with (`true`) or without an extra step.
type RawCycle = Box<dyn Fn(bool) -> Res<()>>;

impl Bench {
    /// A 32x32 heap buffer into vkms: the floor with and without SET_NAME, cenalloc's
    /// allocation with the raw import, with cenalloc-drm's import, and the whole of
    /// `allocate` of the kept plan; then the same for a display-only buffer and for vivid-001.
    pub fn group_overhead(&mut self) -> Res<()> {
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
            let path = plan.source().path.clone().ok_or("not a heap")?;
            let heap = Heap::open(&path).map_err(|e| e.to_string())?;
            let (size, stride) = (plan.size(), plan.layout().planes()[0].stride as u32);
            let name = dmabuf_name(&plan)?;
            // The same memory with no device attached: allocation alone, imported by hand.
            let bare = a
                .plan_with_source(&request, &[], &plan.source().name)
                .map_err(|e| e.to_string())?;
            let raw_cycle = |set_name: bool| -> Res<()> {
                let fd = heap.alloc(size).map_err(|e| e.to_string())?;
                if set_name {
                    dmabuf::set_name(std::os::fd::AsFd::as_fd(&fd), &name)
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
                    let buffer = a.allocate(&bare).map_err(|e| e.to_string())?;
                    let import = card
                        .import(buffer.buffer().fd(), w, h, stride)
                        .map_err(|e| e.to_string())?;
                    card.release(import).map_err(|e| e.to_string())
                }),
                Box::new(|| {
                    let buffer = a.allocate(&bare).map_err(|e| e.to_string())?;
                    importers[0]
                        .import(buffer.buffer())
                        .map(drop)
                        .map_err(|e| e.to_string())
                }),
                allocate_op(&a, &plan),
            ];
            parts.push(self.time_placement(&mut ops)?);
        }
        let names = [
            "raw ioctls (SET_NAME included)",
            "raw ioctls without SET_NAME",
            "cenalloc allocate + raw import",
            "cenalloc allocate + cenalloc-drm import",
            "cenalloc allocate (planned once)",
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
            if plan.source().kind != SourceKind::Device {
                return Err(format!(
                    "expected vkms to allocate, the plan says {:?}",
                    plan.source()
                ));
            }
            let RawImporter::Drm(card) = raw else {
                return Err("expected a DRM card".into());
            };
            let name = dmabuf_name(plan)?;
            Ok(Box::new(move |prime_import: bool| -> Res<()> {
                let dumb = card.export_dumb(w, h).map_err(|e| e.to_string())?;
                dmabuf::set_name(dumb.fd.as_fd(), &name).map_err(|e| e.to_string())?;
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
            let path = plan.source().path.clone().ok_or("not a heap")?;
            let heap = Heap::open(&path).map_err(|e| e.to_string())?;
            let size = plan.size();
            let RawImporter::Video(queue) = raw else {
                return Err("expected a V4L2 queue".into());
            };
            let name = dmabuf_name(plan)?;
            Ok(Box::new(move |enum_fmt: bool| -> Res<()> {
                let fd = heap.alloc(size).map_err(|e| e.to_string())?;
                dmabuf::set_name(std::os::fd::AsFd::as_fd(&fd), &name)
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
                allocate_op(&a, &plan),
            ];
            parts.push(self.time_placement(&mut ops)?);
        }
        let names = [
            "raw ioctls (SET_NAME included)",
            step,
            "cenalloc allocate (planned once)",
        ];
        self.record_against_first(group, case, &names, placement::pool(parts));
        Ok(())
    }
}

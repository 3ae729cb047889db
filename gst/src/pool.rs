//! A `GstBufferPool` whose buffers are cenalloc buffers: each is allocated with
//! [`cenalloc::Allocator::allocate`] from the pool's [`cenalloc::Plan`] (so it comes from the
//! memory source chosen for both devices and has been imported into each once), wrapped as
//! dma-buf memory and described by a `GstVideoMeta` with the plan's strides and offsets.
//!
//! The pool keeps no import of its own: the elements on both sides import the dma-buf
//! themselves (v4l2src queues it, kmssink makes its framebuffer), so the pool hands the memory
//! a duplicate of the dma-buf's fd and drops the cenalloc buffer. A buffer's memory is freed
//! when GStreamer frees the buffer: when the pool is stopped, or, for buffers of an old pool
//! after renegotiation, when downstream lets go of them.

use std::sync::Mutex;

use gst::glib;
use gst::subclass::prelude::*;

use crate::CAT;

/// What a pool allocates for: the plan and the video layout GStreamer knows it by.
#[derive(Debug)]
pub struct PoolSetup {
    /// The allocator that made the plan.
    pub allocator: cenalloc::Allocator,
    /// The plan every buffer follows.
    pub plan: cenalloc::Plan,
    /// The caps' video info (format and size for the `GstVideoMeta`).
    pub info: gst_video::VideoInfo,
}

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct CenallocPool {
        pub(super) setup: Mutex<Option<(PoolSetup, gst_allocators::DmaBufAllocator)>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for CenallocPool {
        const NAME: &'static str = "GstCenallocPool";
        type Type = super::CenallocPool;
        type ParentType = gst::BufferPool;
    }

    impl ObjectImpl for CenallocPool {}
    impl GstObjectImpl for CenallocPool {}

    impl BufferPoolImpl for CenallocPool {
        fn options() -> &'static [&'static str] {
            &["GstBufferPoolOptionVideoMeta"]
        }

        fn set_config(&self, config: &mut gst::BufferPoolConfigRef) -> bool {
            let guard = self.setup.lock().unwrap_or_else(|p| p.into_inner());
            let Some((setup, _)) = guard.as_ref() else {
                gst::error!(CAT, imp = self, "pool configured before it was set up");
                return false;
            };
            if let Some((_, size, _, _)) = config.params() {
                if u64::from(size) > setup.plan.size() {
                    gst::error!(
                        CAT,
                        imp = self,
                        "asked for {size}-byte buffers; the plan's are {} bytes",
                        setup.plan.size()
                    );
                    return false;
                }
            }
            drop(guard);
            self.parent_set_config(config)
        }

        fn alloc_buffer(
            &self,
            _params: Option<&gst::BufferPoolAcquireParams>,
        ) -> Result<gst::Buffer, gst::FlowError> {
            let guard = self.setup.lock().unwrap_or_else(|p| p.into_inner());
            let Some((setup, dmabuf)) = guard.as_ref() else {
                gst::error!(CAT, imp = self, "pool used before it was set up");
                return Err(gst::FlowError::Error);
            };
            let fail = |what: String| {
                gst::error!(CAT, imp = self, "{what}");
                gst::FlowError::Error
            };
            let shared = setup
                .allocator
                .allocate(&setup.plan)
                .map_err(|e| fail(format!("cenalloc allocation failed: {e}")))?;
            // One GstMemory per dma-buf: the buffer's one, or one per plane. The video meta's
            // offsets count from the start of the first memory across all of them.
            let buffer_of_planes = shared.buffer();
            let layout = setup.plan.layout();
            let mut memories = Vec::new();
            for (fd, &size) in buffer_of_planes.dma_bufs().zip(layout.dma_buf_sizes()) {
                let fd = fd
                    .try_clone_to_owned()
                    .map_err(|e| fail(format!("dup of the dma-buf fd failed: {e}")))?;
                let size = usize::try_from(size)
                    .map_err(|_| fail(format!("buffer size {size} too large")))?;
                memories.push(
                    crate::sys::dmabuf_memory(dmabuf, fd, size)
                        .map_err(|e| fail(format!("wrapping the dma-buf failed: {e}")))?,
                );
            }
            let size = layout.size();
            let mut offsets = Vec::new();
            let mut strides = Vec::new();
            for (i, plane) in layout.planes().iter().enumerate() {
                let before: u64 = layout.dma_buf_sizes()[..layout.dma_buf_of_plane(i)]
                    .iter()
                    .sum();
                offsets.push(
                    usize::try_from(before + plane.offset).map_err(|_| gst::FlowError::Error)?,
                );
                strides.push(i32::try_from(plane.stride).map_err(|_| gst::FlowError::Error)?);
            }
            let mut buffer = gst::Buffer::new();
            {
                let buffer = buffer.get_mut().ok_or(gst::FlowError::Error)?;
                for memory in memories {
                    buffer.append_memory(memory);
                }
                gst_video::VideoMeta::add_full(
                    buffer,
                    gst_video::VideoFrameFlags::empty(),
                    setup.info.format(),
                    setup.info.width(),
                    setup.info.height(),
                    &offsets,
                    &strides,
                )
                .map_err(|e| fail(format!("adding the video meta failed: {e}")))?;
            }
            gst::debug!(
                CAT,
                imp = self,
                "allocated a {size}-byte dma-buf from {} ({})",
                setup.plan.source().name,
                setup.plan.name()
            );
            // `shared` (its trial imports) is dropped here; the memory keeps the dma-buf.
            Ok(buffer)
        }
    }
}

glib::wrapper! {
    /// A buffer pool of cenalloc buffers following one plan.
    pub struct CenallocPool(ObjectSubclass<imp::CenallocPool>)
        @extends gst::BufferPool, gst::Object;
}

impl CenallocPool {
    /// A pool allocating with `setup`'s plan.
    pub fn new(setup: PoolSetup) -> Self {
        let pool: Self = glib::Object::new();
        let dmabuf = gst_allocators::DmaBufAllocator::new();
        *pool.imp().setup.lock().unwrap_or_else(|p| p.into_inner()) = Some((setup, dmabuf));
        pool
    }
}

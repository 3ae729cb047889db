//! An allocated dma-buf with its layout: fds, planes, CPU mapping, names and fences.

use std::any::Any;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::sys::{self, MmapRegion};
use crate::{Error, Layout, Plan, Result, SourceChoice, SourceProperties};

/// A dma-buf with its layout. Cloning is cheap and shares the same dma-buf; the memory lives
/// as long as any clone or any import of it.
#[derive(Clone)]
pub struct Buffer {
    inner: Arc<Inner<dyn Any + Send + Sync>>,
}

/// The shared part of a buffer. The keepalive lives in the same allocation (no box of its
/// own): a buffer costs one allocation whatever keeps it alive.
struct Inner<K: ?Sized> {
    description: Description,
    /// How the exporting device knows the buffer again, if it said.
    token: Option<crate::ExportToken>,
    /// The dma-buf and what keeps the device's side of it alive, released in that order;
    /// `present` says the keepalive is not [`NoKeepalive`] (known without a dynamic type
    /// check). Under 128 bytes in all, so that building it needs no call to memcpy.
    held: sys::FdAndKeepalive<K>,
}

// A buffer's shared part is moved into its allocation for every buffer: with the reference
// counts (two words) it stays within 128 bytes for a keepalive of two words (a device and a
// handle), so that the move is inline rather than a call to memcpy.
const _: () = assert!(std::mem::size_of::<Inner<[usize; 2]>>() + 16 <= 128);

/// The keepalive of a buffer that has none.
pub(crate) struct NoKeepalive;

/// A buffer's shared part, keeping `keepalive` (or nothing) alive with it.
#[inline(always)]
fn share<K: Any + Send + Sync>(
    fd: OwnedFd,
    description: Description,
    keepalive: K,
    token: Option<crate::ExportToken>,
) -> Arc<Inner<dyn Any + Send + Sync>> {
    Arc::new(Inner {
        description,
        token,
        held: sys::FdAndKeepalive::new(
            fd,
            std::any::TypeId::of::<K>() != std::any::TypeId::of::<NoKeepalive>(),
            keepalive,
        ),
    })
}

/// Where an exported buffer came from, once the allocator knows.
enum Origin {
    Plan(Arc<Plan>),
    Choice(SourceChoice, Option<SourceProperties>),
}

/// The origin of a device export the allocator has not placed yet.
static UNPLACED: SourceChoice = SourceChoice {
    kind: crate::SourceKind::Device,
    name: String::new(),
    path: None,
};

/// The layout of `description`, moved out of it.
fn description_layout(description: &mut Description) -> Layout {
    match description {
        Description::Own(own) => std::mem::replace(&mut own.layout, Layout::EMPTY),
        Description::Planned(plan) => plan.layout.clone(),
        Description::Exported { layout, .. } => std::mem::replace(layout, Layout::EMPTY),
    }
}

fn own(layout: Layout, source: SourceChoice) -> Description {
    Description::Own(Box::new(Own {
        layout,
        source,
        properties: None,
    }))
}

/// Layout and origin of a buffer: its own, or those of the plan it was allocated from
/// (shared, so buffers of one plan cost no copies of it), or the layout the exporting device
/// chose with the plan's origin. Kept small: it is moved into every buffer's allocation.
enum Description {
    /// A buffer wrapped outside a plan (boxed: rare and large).
    Own(Box<Own>),
    /// Laid out as its plan says.
    Planned(Arc<Plan>),
    /// Laid out by the exporting device; from `plan`, once the allocator has placed it
    /// (`None` until then).
    Exported {
        layout: Layout,
        plan: Option<Arc<Plan>>,
    },
}

struct Own {
    layout: Layout,
    source: SourceChoice,
    properties: Option<SourceProperties>,
}

impl<K: ?Sized> Inner<K> {
    #[inline]
    fn layout(&self) -> &Layout {
        match &self.description {
            Description::Own(own) => &own.layout,
            Description::Planned(plan) => &plan.layout,
            Description::Exported { layout, .. } => layout,
        }
    }

    fn source(&self) -> &SourceChoice {
        match &self.description {
            Description::Own(own) => &own.source,
            Description::Planned(plan)
            | Description::Exported {
                plan: Some(plan), ..
            } => &plan.source,
            Description::Exported { plan: None, .. } => &UNPLACED,
        }
    }

    fn properties(&self) -> Option<&SourceProperties> {
        match &self.description {
            Description::Own(own) => own.properties.as_ref(),
            Description::Planned(plan)
            | Description::Exported {
                plan: Some(plan), ..
            } => Some(&plan.source_properties),
            Description::Exported { plan: None, .. } => None,
        }
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffer")
            .field("fd", &self.inner.held.fd)
            .field("layout", self.inner.layout())
            .field("source", self.inner.source())
            .finish()
    }
}

/// How the CPU will access a mapping (selects the DMA_BUF_IOCTL_SYNC direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuAccess {
    /// Read only.
    Read,
    /// Write only.
    Write,
    /// Read and write.
    ReadWrite,
}

/// A CPU mapping of a whole buffer, bracketed by DMA_BUF_IOCTL_SYNC start/end.
pub struct Mapping<'a> {
    buffer: &'a Buffer,
    region: MmapRegion,
    access: CpuAccess,
}

impl fmt::Debug for Mapping<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapping")
            .field("buffer", &self.buffer.inner.held.fd)
            .field("len", &self.region.len())
            .field("access", &self.access)
            .finish()
    }
}

impl CpuAccess {
    fn sync_direction(self) -> u64 {
        match self {
            CpuAccess::Read => sys::SYNC_READ,
            CpuAccess::Write => sys::SYNC_WRITE,
            CpuAccess::ReadWrite => sys::SYNC_READ | sys::SYNC_WRITE,
        }
    }
}

/// Which accesses a sync_file export or import concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceAccess {
    /// Readers (a sync_file that signals when writes are done / a reader's fence).
    Read,
    /// Writers (signals when all access is done / a writer's fence).
    Write,
    /// Both.
    ReadWrite,
}

impl FenceAccess {
    fn flags(self) -> u32 {
        (match self {
            FenceAccess::Read => sys::SYNC_READ,
            FenceAccess::Write => sys::SYNC_WRITE,
            FenceAccess::ReadWrite => sys::SYNC_READ | sys::SYNC_WRITE,
        }) as u32
    }
}

/// Checks that `fd` is a dma-buf: its /proc/self/fd link names the dma-buf file system, or
/// its /proc/self/fdinfo has the `exp_name:` line only dma-bufs print.
pub fn check_dmabuf(fd: BorrowedFd<'_>, what: &str) -> Result<()> {
    dmabuf_or_why_not(fd).map_err(|reason| Error::NotDmabuf {
        what: what.to_owned(),
        reason,
    })
}

/// [`check_dmabuf`] for an fd `source` handed over, naming both only on failure.
fn ensure_dmabuf(fd: &OwnedFd, source: &str) -> Result<()> {
    dmabuf_or_why_not(fd.as_fd()).map_err(|reason| Error::NotDmabuf {
        what: format!("fd {} for {source}", fd.as_raw_fd()),
        reason,
    })
}

/// The device number of the dma-buf file system, learnt from the first dma-buf checked: every
/// dma-buf is a file of that one pseudo file system, so later checks need only an fstat.
static DMABUF_FS_DEV: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// `Ok` for a dma-buf, else why `fd` is not one.
fn dmabuf_or_why_not(fd: BorrowedFd<'_>) -> std::result::Result<(), String> {
    let raw = fd.as_raw_fd();
    let stat = rustix::fs::fstat(fd).map_err(|e| format!("fstat failed: {e}"))?;
    if DMABUF_FS_DEV.get() == Some(&stat.st_dev) {
        return Ok(());
    }
    let file_type = rustix::fs::FileType::from_raw_mode(stat.st_mode);
    if matches!(
        file_type,
        rustix::fs::FileType::Directory | rustix::fs::FileType::Socket | rustix::fs::FileType::Fifo
    ) {
        return Err(format!("it is a {file_type:?}"));
    }
    let link = std::fs::read_link(format!("/proc/self/fd/{raw}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if link.starts_with("/dmabuf:") || link.starts_with("anon_inode:dmabuf") {
        // Only the pseudo file system's files are named so (an anon_inode is not: all anon
        // inodes share one device).
        if link.starts_with("/dmabuf:") {
            let _ = DMABUF_FS_DEV.set(stat.st_dev);
        }
        return Ok(());
    }
    let fdinfo = std::fs::read_to_string(format!("/proc/self/fdinfo/{raw}")).unwrap_or_default();
    if fdinfo.lines().any(|l| l.starts_with("exp_name:")) {
        return Ok(());
    }
    Err(if link.is_empty() {
        "it has no dma-buf exporter (no exp_name in fdinfo)".to_owned()
    } else {
        format!("it refers to {link}, not a dma-buf")
    })
}

impl Buffer {
    /// Wraps a dma-buf with its layout (for buffers cenalloc did not allocate, e.g. a Wayland
    /// client's). Fails with [`crate::Error::NotDmabuf`] if `fd` is not a dma-buf.
    pub fn from_fd(fd: OwnedFd, layout: Layout, source: SourceChoice) -> Result<Buffer> {
        ensure_dmabuf(&fd, &source.name)?;
        Ok(Self::new_unchecked(fd, layout, source))
    }

    /// Like [`Buffer::from_fd`], also keeping a device-side object alive as long as the buffer.
    pub fn with_keepalive<K: Any + Send + Sync>(
        fd: OwnedFd,
        layout: Layout,
        source: SourceChoice,
        keepalive: K,
    ) -> Result<Buffer> {
        ensure_dmabuf(&fd, &source.name)?;
        Ok(Buffer {
            inner: share(fd, own(layout, source), keepalive, None),
        })
    }

    /// Wraps an fd a memory source just returned, trusted to be a dma-buf (or, in host tests,
    /// a memfd standing in for one).
    pub(crate) fn new_unchecked(fd: OwnedFd, layout: Layout, source: SourceChoice) -> Buffer {
        Buffer {
            inner: share(fd, own(layout, source), NoKeepalive, None),
        }
    }

    /// Wraps an fd the memory source of `plan` just returned; layout and origin are the plan's.
    pub(crate) fn planned(fd: OwnedFd, plan: Arc<Plan>) -> Buffer {
        Buffer {
            inner: share(fd, Description::Planned(plan), NoKeepalive, None),
        }
    }

    /// The buffer of a device export, before its origin is known.
    #[inline(always)]
    pub(crate) fn unplaced<K: Any + Send + Sync>(
        fd: OwnedFd,
        layout: Layout,
        keepalive: K,
        token: Option<crate::ExportToken>,
    ) -> Buffer {
        Buffer {
            inner: share(
                fd,
                Description::Exported { layout, plan: None },
                keepalive,
                token,
            ),
        }
    }

    /// The dma-buf a device exported, now with its origin. Fails if the fd, not known to be
    /// a dma-buf, is not one. Inlined: on the way of every planned buffer.
    #[inline(always)]
    fn placed(exported: crate::Exported, origin: Origin) -> Result<Buffer> {
        let (mut buffer, known_dmabuf) = exported.into_parts();
        if !known_dmabuf {
            let name = match &origin {
                Origin::Plan(plan) => &plan.source.name,
                Origin::Choice(choice, _) => &choice.name,
            };
            ensure_dmabuf(&buffer.inner.held.fd, name)?;
        }
        // An export never shares its buffer: the origin is set in place.
        let Some(inner) = Arc::get_mut(&mut buffer.inner) else {
            return Ok(buffer);
        };
        match (origin, &mut inner.description) {
            (Origin::Plan(plan), Description::Exported { plan: slot, .. }) => *slot = Some(plan),
            (Origin::Plan(plan), description) => {
                let layout = description_layout(description);
                *description = Description::Exported {
                    layout,
                    plan: Some(plan),
                };
            }
            (Origin::Choice(source, properties), description) => {
                let layout = description_layout(description);
                *description = Description::Own(Box::new(Own {
                    layout,
                    source,
                    properties,
                }));
            }
        }
        Ok(buffer)
    }

    /// Wraps the dma-buf the exporting device of `plan` allocated; its origin is the plan's.
    /// Fails if the fd, not known to be a dma-buf, is not one.
    #[inline(always)]
    pub(crate) fn exported(exported: crate::Exported, plan: Arc<Plan>) -> Result<Buffer> {
        Self::placed(exported, Origin::Plan(plan))
    }

    /// Wraps the dma-buf a device exported (by a direct [`crate::Importer::export`] call) as
    /// coming from `source`. Fails if the fd, not known to be a dma-buf, is not one.
    pub fn from_export(
        exported: crate::Exported,
        source: SourceChoice,
        properties: Option<SourceProperties>,
    ) -> Result<Buffer> {
        Self::placed(exported, Origin::Choice(source, properties))
    }

    /// The dma-buf fd (all planes live in this one dma-buf, at their offsets).
    #[inline]
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inner.held.fd.as_fd()
    }

    /// Planes, strides, offsets, modifier and size.
    #[inline]
    pub fn layout(&self) -> &Layout {
        self.inner.layout()
    }

    /// Where the memory came from.
    #[inline]
    pub fn source(&self) -> &SourceChoice {
        self.inner.source()
    }

    /// What the memory source gave (contiguity, cache policy, ...), when cenalloc allocated
    /// the buffer; `None` for a buffer wrapped with [`Buffer::from_fd`].
    pub fn source_properties(&self) -> Option<&SourceProperties> {
        self.inner.properties()
    }

    /// Records what the memory source gave; only before the buffer is shared.
    pub(crate) fn set_source_properties(&mut self, properties: SourceProperties) {
        if let Some(Inner {
            description: Description::Own(own),
            ..
        }) = Arc::get_mut(&mut self.inner)
        {
            own.properties = Some(properties);
        }
    }

    /// True if both handles refer to the same allocation.
    #[inline]
    pub fn same_as(&self, other: &Buffer) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The object the exporting device attached to the buffer ([`crate::Exported::keepalive`]),
    /// by which that device recognises a buffer it allocated itself.
    #[inline]
    pub fn keepalive(&self) -> Option<&(dyn Any + Send + Sync)> {
        self.inner
            .held
            .present
            .then_some(self.inner.held.keepalive())
    }

    /// The exporting device's token for the buffer ([`crate::Exported::with_token`]), by
    /// which that device recognises a buffer it allocated itself without a dynamic type check.
    #[inline]
    pub fn export_token(&self) -> Option<crate::ExportToken> {
        self.inner.token
    }

    /// How many handles (clones, including those held by imports) share this allocation.
    #[inline]
    pub fn handle_count(&self) -> usize {
        Arc::strong_count(&self.inner)
    }

    /// Maps the whole buffer for CPU access. DMA_BUF_IOCTL_SYNC START is issued now and END
    /// when the mapping is dropped, in the direction `access` says.
    pub fn map(&self, access: CpuAccess) -> Result<Mapping<'_>> {
        let len = usize::try_from(self.inner.layout().size).map_err(|_| {
            Error::Overflow(format!(
                "{} bytes do not fit the address space",
                self.inner.layout().size
            ))
        })?;
        let writable = access != CpuAccess::Read;
        let region = MmapRegion::map_shared(self.fd(), len, writable).map_err(|e| {
            Error::io(
                format!("mapping {} bytes of {}", len, self.inner.source().name),
                e,
            )
        })?;
        self.sync(sys::SYNC_START | access.sync_direction())?;
        Ok(Mapping {
            buffer: self,
            region,
            access,
        })
    }

    fn sync(&self, flags: u64) -> Result<()> {
        match sys::dma_buf_sync(self.fd(), flags) {
            Ok(()) => Ok(()),
            // Not a dma-buf (a memfd standing in for one in host tests): nothing to sync.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTTY.raw_os_error()) => {
                log::debug!(
                    "DMA_BUF_IOCTL_SYNC unsupported on {:?}: {e}",
                    self.inner.held.fd
                );
                Ok(())
            }
            Err(e) => Err(Error::io("DMA_BUF_IOCTL_SYNC", e)),
        }
    }

    /// Names the dma-buf (shown in /sys/kernel/debug/dma_buf/bufinfo and fdinfo). The
    /// kernel keeps at most 31 bytes; longer names are cut, and so is a name at a NUL.
    pub fn set_name(&self, name: &str) -> Result<()> {
        self.set_kernel_name(&crate::plan::KernelName::new(name).0)
    }

    /// [`Buffer::set_name`] with the name already cut to what the kernel keeps.
    #[inline(always)]
    pub(crate) fn set_kernel_name(&self, name: &std::ffi::CStr) -> Result<()> {
        sys::dma_buf_set_name(self.fd(), name)
            .map_err(|e| Error::io(format!("DMA_BUF_SET_NAME {name:?}"), e))
    }

    /// Exports the fences of the buffer as a sync_file (DMA_BUF_IOCTL_EXPORT_SYNC_FILE): for
    /// [`FenceAccess::Read`] it signals when pending writes are done, for `Write` when all
    /// pending access is done.
    pub fn export_sync_file(&self, access: FenceAccess) -> Result<OwnedFd> {
        sys::dma_buf_export_sync_file(self.fd(), access.flags())
            .map_err(|e| Error::io("DMA_BUF_IOCTL_EXPORT_SYNC_FILE", e))
    }

    /// Attaches the fence of `sync_file` to the buffer as a reader's or writer's fence
    /// (DMA_BUF_IOCTL_IMPORT_SYNC_FILE), so implicit-sync users wait for it.
    pub fn import_sync_file(&self, access: FenceAccess, sync_file: BorrowedFd<'_>) -> Result<()> {
        sys::dma_buf_import_sync_file(self.fd(), access.flags(), sync_file)
            .map_err(|e| Error::io("DMA_BUF_IOCTL_IMPORT_SYNC_FILE", e))
    }
}

impl Mapping<'_> {
    /// The mapped bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.region.as_slice()
    }

    /// The mapped bytes, writable. Panics for a [`CpuAccess::Read`] mapping (its pages are
    /// mapped read-only).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        assert!(
            self.access != CpuAccess::Read,
            "as_mut_slice on a read-only mapping"
        );
        self.region.as_mut_slice()
    }

    /// The buffer mapped.
    pub fn buffer(&self) -> &Buffer {
        self.buffer
    }

    /// The access mode.
    pub fn access(&self) -> CpuAccess {
        self.access
    }
}

impl Drop for Mapping<'_> {
    fn drop(&mut self) {
        if let Err(e) = self
            .buffer
            .sync(sys::SYNC_END | self.access.sync_direction())
        {
            log::warn!("ending CPU access to a buffer failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Modifier, SourceKind};

    fn blob_layout(size: u64) -> Layout {
        Layout {
            fourcc: None,
            width: 0,
            height: 0,
            modifier: Modifier::LINEAR,
            planes: crate::Planes::from_slice(&[crate::PlaneLayout {
                offset: 0,
                stride: 0,
                size,
            }]),
            size,
        }
    }

    fn choice() -> SourceChoice {
        SourceChoice {
            kind: SourceKind::Heap,
            name: "test".into(),
            path: None,
        }
    }

    #[test]
    fn a_memfd_is_not_a_dmabuf() {
        let fd = rustix::fs::memfd_create("not-a-dmabuf", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        match Buffer::from_fd(fd, blob_layout(4096), choice()) {
            Err(Error::NotDmabuf { reason, .. }) => assert!(reason.contains("memfd"), "{reason}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Counts its own drops.
    struct Tracked(Arc<std::sync::atomic::AtomicUsize>);
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn memfd(size: u64) -> OwnedFd {
        let fd = rustix::fs::memfd_create("stand-in", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, size).unwrap();
        fd
    }

    #[test]
    fn an_export_keeps_its_keepalive_as_long_as_any_clone() {
        let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let exported = crate::Exported::with_keepalive(
            memfd(4096),
            blob_layout(4096),
            Tracked(drops.clone()),
            true,
        );
        assert!(exported.keepalive().is_some_and(|k| k.is::<Tracked>()));
        assert_eq!(exported.layout().size, 4096);
        let buffer = Buffer::from_export(exported, choice(), None).unwrap();
        assert_eq!(buffer.source().name, choice().name, "the origin is set");
        assert_eq!(buffer.layout().size, 4096, "the layout is kept");
        assert!(buffer.keepalive().is_some_and(|k| k.is::<Tracked>()));
        let clone = buffer.clone();
        drop(buffer);
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 0);
        drop(clone);
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn a_buffer_without_keepalive_says_so() {
        let plain = crate::Exported::new(memfd(4096), blob_layout(4096), true);
        assert!(plain.keepalive().is_none());
        let buffer = Buffer::from_export(plain, choice(), None).unwrap();
        assert!(buffer.keepalive().is_none());
        assert!(
            Buffer::new_unchecked(memfd(4096), blob_layout(4096), choice())
                .keepalive()
                .is_none()
        );
        // An fd not known to be a dma-buf is checked when the export becomes a buffer.
        let unknown = crate::Exported::new(memfd(4096), blob_layout(4096), false);
        assert!(matches!(
            Buffer::from_export(unknown, choice(), None),
            Err(Error::NotDmabuf { .. })
        ));
    }

    #[test]
    fn map_write_read_back() {
        let fd = rustix::fs::memfd_create("stand-in", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 8192).unwrap();
        let b = Buffer::new_unchecked(fd, blob_layout(8192), choice());
        {
            let mut m = b.map(CpuAccess::Write).unwrap();
            m.as_mut_slice()[4000] = 0xab;
        }
        let m = b.map(CpuAccess::Read).unwrap();
        assert_eq!(m.as_slice()[4000], 0xab);
        assert_eq!(b.handle_count(), 1);
        fn is_send_sync<T: Send + Sync>() {}
        is_send_sync::<Buffer>();
        is_send_sync::<Mapping<'_>>();
    }
}

//! An allocated buffer with its layout: its dma-buf (or one per plane), planes, CPU mapping,
//! names and fences.

use std::any::Any;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::sys::{self, MmapRegion};
use crate::{Error, Layout, Result, SourceChoice, SourceProperties};

/// A dma-buf with its layout — or, for a layout with separate planes, one dma-buf per plane.
/// Cloning is cheap and shares the same dma-bufs; the memory lives as long as any clone or any
/// import of it.
#[derive(Clone)]
pub struct Buffer {
    inner: Arc<Inner>,
}

/// The shared part of a buffer. Fields drop in order: the dma-buf is closed before the
/// device-side object that backs it is released.
struct Inner {
    /// One dma-buf, or one per plane ([`Layout::has_separate_planes`]); never empty.
    fds: DmaBufs,
    layout: Layout,
    source: Arc<SourceChoice>,
    properties: Option<SourceProperties>,
    keepalive: Option<Box<dyn Any + Send + Sync>>,
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffer")
            .field("fds", &self.inner.fds)
            .field("layout", &self.inner.layout)
            .field("source", &self.inner.source)
            .finish()
    }
}

/// The dma-bufs of a buffer: at most one per plane, so held inline like the layout's planes.
pub(crate) type DmaBufs = arrayvec::ArrayVec<OwnedFd, { Layout::MAX_PLANES }>;

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

/// A CPU mapping of a whole buffer (each of its dma-bufs), bracketed by DMA_BUF_IOCTL_SYNC
/// start/end. It keeps the buffer alive.
pub struct Mapping {
    buffer: Buffer,
    /// One region per dma-buf, in the buffer's order.
    regions: Vec<MmapRegion>,
    access: CpuAccess,
}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapping")
            .field("buffer", &self.buffer.inner.fds)
            .field(
                "lens",
                &self.regions.iter().map(MmapRegion::len).collect::<Vec<_>>(),
            )
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

/// The dma-bufs of a buffer that has one.
pub(crate) fn one(fd: OwnedFd) -> DmaBufs {
    let mut fds = DmaBufs::new();
    fds.push(fd);
    fds
}

/// The room the kernel keeps for a dma-buf's name, its NUL included (DMA_BUF_NAME_LEN).
const DMA_BUF_NAME_LEN: usize = 32;

/// Names the dma-buf `dmabuf` (shown in /sys/kernel/debug/dma_buf/bufinfo and fdinfo), as
/// [`Buffer::set_name`] does, for dma-bufs that are not [`Buffer`]s, such as a backend's trial
/// buffers.
pub fn name_dma_buf(dmabuf: BorrowedFd<'_>, name: &str) -> Result<()> {
    let field = kernel_name(name);
    // The field always holds a NUL.
    let name = std::ffi::CStr::from_bytes_until_nul(&field).unwrap_or_default();
    sys::dma_buf_set_name(dmabuf, name)
        .map_err(|e| Error::io(format!("DMA_BUF_SET_NAME {name:?}"), e))
}

/// `name` as the kernel keeps a dma-buf's name: at most 31 bytes, cut at the first NUL and at
/// a character boundary, NUL-terminated in the kernel's fixed-size field.
fn kernel_name(name: &str) -> [u8; DMA_BUF_NAME_LEN] {
    let bytes = name.as_bytes();
    let mut end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    end = end.min(DMA_BUF_NAME_LEN - 1);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let mut field = [0; DMA_BUF_NAME_LEN];
    field[..end].copy_from_slice(&bytes[..end]);
    field
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
        Self::from_fds(vec![fd], layout, source)
    }

    /// Wraps dma-bufs with their layout: one, or one per plane for a layout with separate
    /// planes. Fails with [`crate::Error::NotDmabuf`] if an fd is not a dma-buf, and with
    /// [`crate::Error::InvalidLayout`] if the layout has another number of dma-bufs.
    pub fn from_fds(fds: Vec<OwnedFd>, layout: Layout, source: SourceChoice) -> Result<Buffer> {
        if fds.len() != layout.dma_buf_sizes().len() {
            return Err(Error::InvalidLayout {
                plane: None,
                reason: format!(
                    "{} dma-bufs given for a layout of {}",
                    fds.len(),
                    layout.dma_buf_sizes().len()
                ),
            });
        }
        for fd in &fds {
            ensure_dmabuf(fd, &source.name)?;
        }
        // As many as the layout has dma-bufs, so at most one per plane.
        let fds = fds.into_iter().collect();
        Ok(Self::assemble(fds, layout, Arc::new(source), None, None))
    }

    /// Wraps the dma-buf a device exported (by a direct [`crate::Importer::export`] call) as
    /// coming from `source`.
    pub fn from_export(
        exported: crate::Exported,
        source: SourceChoice,
        properties: Option<SourceProperties>,
    ) -> Buffer {
        let crate::Exported {
            fd,
            layout,
            keepalive,
        } = exported;
        Self::assemble(one(fd), layout, Arc::new(source), properties, keepalive)
    }

    /// A buffer of an fd a memory source or a device's export returned, trusted to be a
    /// dma-buf (or, in host tests, a memfd standing in for one); `source` is shared with the
    /// plan it came from.
    pub(crate) fn assemble(
        fds: DmaBufs,
        layout: Layout,
        source: Arc<SourceChoice>,
        properties: Option<SourceProperties>,
        keepalive: Option<Box<dyn Any + Send + Sync>>,
    ) -> Buffer {
        Buffer {
            inner: Arc::new(Inner {
                fds,
                layout,
                source,
                properties,
                keepalive,
            }),
        }
    }

    /// The dma-buf fd: the buffer's only one (all planes at their offsets in it), or, for a
    /// layout with separate planes, plane 0's ([`Buffer::plane_fd`] gives each plane's).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inner.fds[0].as_fd()
    }

    /// The dma-buf holding plane `plane` (the same for every plane unless the layout keeps
    /// planes separate); `None` past the last plane.
    pub fn plane_fd(&self, plane: usize) -> Option<BorrowedFd<'_>> {
        if plane >= self.inner.layout.planes().len() {
            return None;
        }
        self.inner
            .fds
            .get(self.inner.layout.dma_buf_of_plane(plane))
            .map(AsFd::as_fd)
    }

    /// Every dma-buf of the buffer, in order: one, or one per plane.
    pub fn dma_bufs(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.inner.fds.iter().map(AsFd::as_fd)
    }

    /// Planes, strides, offsets, modifier and size.
    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    /// Where the memory came from.
    pub fn source(&self) -> &SourceChoice {
        &self.inner.source
    }

    /// What the memory source gave (contiguity, cache policy, ...), when cenalloc allocated
    /// the buffer; `None` for a buffer wrapped with [`Buffer::from_fd`].
    pub fn source_properties(&self) -> Option<&SourceProperties> {
        self.inner.properties.as_ref()
    }

    /// True if both handles refer to the same allocation.
    pub fn same_as(&self, other: &Buffer) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The object the exporting device attached to the buffer ([`crate::Exported::keepalive`]),
    /// by which that device recognises a buffer it allocated itself.
    pub fn keepalive(&self) -> Option<&(dyn Any + Send + Sync)> {
        self.inner.keepalive.as_deref()
    }

    /// How many handles (clones, including those held by imports) share this allocation.
    pub fn handle_count(&self) -> usize {
        Arc::strong_count(&self.inner)
    }

    /// Maps the whole buffer (each of its dma-bufs) for CPU access. DMA_BUF_IOCTL_SYNC START
    /// is issued now and END when the mapping is dropped, in the direction `access` says.
    pub fn map(&self, access: CpuAccess) -> Result<Mapping> {
        let writable = access != CpuAccess::Read;
        let mut regions = Vec::with_capacity(self.inner.fds.len());
        for (fd, &size) in self.dma_bufs().zip(self.inner.layout.dma_buf_sizes()) {
            let len = usize::try_from(size).map_err(|_| {
                Error::Overflow(format!("{size} bytes do not fit the address space"))
            })?;
            regions.push(MmapRegion::map_shared(fd, len, writable).map_err(|e| {
                Error::io(
                    format!("mapping {} bytes of {}", len, self.inner.source.name),
                    e,
                )
            })?);
        }
        self.sync(sys::SYNC_START | access.sync_direction())?;
        Ok(Mapping {
            buffer: self.clone(),
            regions,
            access,
        })
    }

    fn sync(&self, flags: u64) -> Result<()> {
        for fd in self.dma_bufs() {
            match sys::dma_buf_sync(fd, flags) {
                Ok(()) => {}
                // Not a dma-buf (a memfd standing in for one in host tests): nothing to sync.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTTY.raw_os_error()) => {
                    log::debug!("DMA_BUF_IOCTL_SYNC unsupported on {fd:?}: {e}");
                }
                Err(e) => return Err(Error::io("DMA_BUF_IOCTL_SYNC", e)),
            }
        }
        Ok(())
    }

    /// Names the dma-buf (shown in /sys/kernel/debug/dma_buf/bufinfo and fdinfo). The
    /// kernel keeps at most 31 bytes; longer names are cut, and so is a name at a NUL.
    /// With separate planes, every plane's dma-buf gets the name.
    pub fn set_name(&self, name: &str) -> Result<()> {
        self.dma_bufs().try_for_each(|fd| name_dma_buf(fd, name))
    }

    /// Exports the fences of the buffer as a sync_file (DMA_BUF_IOCTL_EXPORT_SYNC_FILE): for
    /// [`FenceAccess::Read`] it signals when pending writes are done, for `Write` when all
    /// pending access is done. With separate planes, the fences of plane 0's dma-buf (devices
    /// write every plane of a frame in one job).
    pub fn export_sync_file(&self, access: FenceAccess) -> Result<OwnedFd> {
        sys::dma_buf_export_sync_file(self.fd(), access.flags())
            .map_err(|e| Error::io("DMA_BUF_IOCTL_EXPORT_SYNC_FILE", e))
    }

    /// Attaches the fence of `sync_file` to the buffer as a reader's or writer's fence
    /// (DMA_BUF_IOCTL_IMPORT_SYNC_FILE), so implicit-sync users wait for it.
    /// With separate planes, every plane's dma-buf gets the fence.
    pub fn import_sync_file(&self, access: FenceAccess, sync_file: BorrowedFd<'_>) -> Result<()> {
        self.dma_bufs().try_for_each(|fd| {
            sys::dma_buf_import_sync_file(fd, access.flags(), sync_file.as_fd())
                .map_err(|e| Error::io("DMA_BUF_IOCTL_IMPORT_SYNC_FILE", e))
        })
    }
}

impl Mapping {
    /// The mapped bytes of the buffer's dma-buf (plane 0's, when each plane has its own).
    pub fn as_slice(&self) -> &[u8] {
        self.regions[0].as_slice()
    }

    /// The mapped bytes, writable, as [`Mapping::as_slice`]. Panics for a
    /// [`CpuAccess::Read`] mapping (its pages are mapped read-only).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.assert_writable();
        self.regions[0].as_mut_slice()
    }

    /// The bytes of plane `plane` (its rows, `stride` apart), wherever the layout puts it;
    /// `None` past the last plane.
    pub fn plane(&self, plane: usize) -> Option<&[u8]> {
        let (region, range) = self.plane_range(plane)?;
        self.regions[region].as_slice().get(range)
    }

    /// The bytes of plane `plane`, writable, as [`Mapping::plane`]. Panics for a
    /// [`CpuAccess::Read`] mapping.
    pub fn plane_mut(&mut self, plane: usize) -> Option<&mut [u8]> {
        self.assert_writable();
        let (region, range) = self.plane_range(plane)?;
        self.regions[region].as_mut_slice().get_mut(range)
    }

    fn plane_range(&self, plane: usize) -> Option<(usize, std::ops::Range<usize>)> {
        let layout = self.buffer.layout();
        let p = layout.planes().get(plane)?;
        let start = usize::try_from(p.offset).ok()?;
        let end = start.checked_add(usize::try_from(p.size).ok()?)?;
        Some((layout.dma_buf_of_plane(plane), start..end))
    }

    fn assert_writable(&self) {
        assert!(
            self.access != CpuAccess::Read,
            "writing through a read-only mapping"
        );
    }

    /// The buffer mapped.
    pub fn buffer(&self) -> &Buffer {
        &self.buffer
    }

    /// The access mode.
    pub fn access(&self) -> CpuAccess {
        self.access
    }
}

impl Drop for Mapping {
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
    use crate::SourceKind;

    fn blob_layout(size: u64) -> Layout {
        Layout::blob(size)
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

    #[test]
    fn a_plane_fd_missing_is_an_invalid_layout() {
        let plane = crate::PlaneLayout {
            offset: 0,
            stride: 64,
            size: 4096,
        };
        let layout = Layout::new_per_plane(
            crate::Fourcc::Nv12,
            64,
            64,
            crate::Modifier::LINEAR,
            &[plane, plane],
            &[4096, 4096],
        )
        .unwrap();
        let one = rustix::fs::memfd_create("plane-0", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        match Buffer::from_fds(vec![one], layout, choice()) {
            Err(Error::InvalidLayout { reason, .. }) => {
                assert!(
                    reason.contains("1 dma-bufs given for a layout of 2"),
                    "{reason}"
                )
            }
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
        let exported =
            crate::Exported::with_keepalive(memfd(4096), blob_layout(4096), Tracked(drops.clone()));
        assert!(exported.keepalive().is_some_and(|k| k.is::<Tracked>()));
        assert_eq!(exported.layout().size, 4096);
        let buffer = Buffer::from_export(exported, choice(), None);
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
        let plain = crate::Exported::new(memfd(4096), blob_layout(4096));
        assert!(plain.keepalive().is_none());
        let buffer = Buffer::from_export(plain, choice(), None);
        assert!(buffer.keepalive().is_none());
        assert!(Buffer::assemble(
            one(memfd(4096)),
            blob_layout(4096),
            Arc::new(choice()),
            None,
            None
        )
        .keepalive()
        .is_none());
    }

    #[test]
    fn kernel_names_are_cut_as_the_kernel_keeps_them() {
        let kept = |name: &str| {
            let field = kernel_name(name);
            let name = std::ffi::CStr::from_bytes_until_nul(&field).unwrap();
            name.to_str().map(str::to_owned)
        };
        assert_eq!(kept("short").unwrap(), "short");
        assert_eq!(kept(&"x".repeat(40)).unwrap().len(), 31);
        assert_eq!(kept("ab\0cd").unwrap(), "ab");
        assert_eq!(kept(&"é".repeat(20)).unwrap(), "é".repeat(15));
    }

    #[test]
    fn map_write_read_back() {
        let fd = rustix::fs::memfd_create("stand-in", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 8192).unwrap();
        let b = Buffer::assemble(one(fd), blob_layout(8192), Arc::new(choice()), None, None);
        {
            let mut m = b.map(CpuAccess::Write).unwrap();
            m.as_mut_slice()[4000] = 0xab;
        }
        assert_eq!(
            b.handle_count(),
            1,
            "a dropped mapping lets go of the buffer"
        );
        let m = b.map(CpuAccess::Read).unwrap();
        assert_eq!(m.as_slice()[4000], 0xab);
        assert_eq!(b.handle_count(), 2, "a mapping keeps the buffer alive");
        fn is_send_sync<T: Send + Sync>() {}
        is_send_sync::<Buffer>();
        is_send_sync::<Mapping>();
    }
}

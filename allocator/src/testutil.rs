//! Mock memory sources and importers for host unit tests of planning and allocation.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::source::heap::{heap_properties, HeapClass};
use crate::{
    Buffer, BufferRequest, Constraints, Error, Imported, Importer, MemorySource, Result,
    SourceKind, SourceProperties,
};

/// A source handing out memfds (stand-ins for dma-bufs) and counting allocations.
#[derive(Debug)]
pub(crate) struct MockSource {
    pub name: String,
    pub kind: SourceKind,
    pub props: SourceProperties,
    pub allocations: AtomicUsize,
}

impl MockSource {
    pub fn heap(name: &str, class: HeapClass) -> Arc<MockSource> {
        Arc::new(MockSource {
            name: name.into(),
            kind: SourceKind::Heap,
            props: heap_properties(class, Some(64 << 20)),
            allocations: AtomicUsize::new(0),
        })
    }
    pub fn udmabuf() -> Arc<MockSource> {
        Arc::new(MockSource {
            name: "udmabuf".into(),
            kind: SourceKind::Udmabuf,
            props: crate::source::udmabuf::udmabuf_properties(false),
            allocations: AtomicUsize::new(0),
        })
    }
    pub fn count(&self) -> usize {
        self.allocations.load(Ordering::SeqCst)
    }
}

pub(crate) fn memfd(size: u64) -> OwnedFd {
    let fd = rustix::fs::memfd_create("mock", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&fd, size).unwrap();
    fd
}

impl MemorySource for MockSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> SourceKind {
        self.kind
    }
    fn path(&self) -> Option<&Path> {
        None
    }
    fn properties(&self) -> &SourceProperties {
        &self.props
    }
    fn allocate(&self, size: u64) -> Result<OwnedFd> {
        self.allocations.fetch_add(1, Ordering::SeqCst);
        Ok(memfd(size))
    }
}

/// An importer with fixed constraints that counts live imports.
#[derive(Debug)]
pub(crate) struct MockImporter {
    pub name: String,
    /// What it answers; tests may change it.
    pub constraints: std::sync::Mutex<Constraints>,
    pub fail_import: bool,
    pub live: Arc<AtomicUsize>,
    /// Calls of `constraints`.
    pub queries: AtomicUsize,
    /// When set, the device exports a memfd with this layout.
    pub export_layout: Option<crate::Layout>,
}

#[derive(Debug)]
struct MockImport {
    device: String,
    _buffer: Buffer,
    live: Arc<AtomicUsize>,
}

impl Drop for MockImport {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Imported for MockImport {
    fn device(&self) -> &str {
        &self.device
    }
}

impl MockImporter {
    /// A plain mock: imports anything, cannot export, constraints not declared stable.
    fn plain(name: &str, constraints: Constraints) -> MockImporter {
        MockImporter {
            name: name.into(),
            constraints: constraints.into(),
            fail_import: false,
            live: Arc::new(AtomicUsize::new(0)),
            queries: AtomicUsize::new(0),
            export_layout: None,
        }
    }
    pub fn new(name: &str, constraints: Constraints) -> Arc<MockImporter> {
        Arc::new(Self::plain(name, constraints))
    }
    pub fn exporter(
        name: &str,
        constraints: Constraints,
        layout: crate::Layout,
    ) -> Arc<MockImporter> {
        Arc::new(MockImporter {
            export_layout: Some(layout),
            ..Self::plain(name, constraints)
        })
    }
    pub fn failing(name: &str) -> Arc<MockImporter> {
        Arc::new(MockImporter {
            fail_import: true,
            ..Self::plain(name, Constraints::default())
        })
    }
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
    /// How often its constraints were asked for.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Importer for MockImporter {
    fn name(&self) -> &str {
        &self.name
    }
    fn constraints(&self, _request: &BufferRequest) -> Result<Constraints> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        Ok(self.constraints.lock().unwrap().clone())
    }
    fn export(
        &self,
        request: &BufferRequest,
        _merged: &crate::MergedConstraints,
    ) -> Result<crate::Exported> {
        let Some(layout) = self.export_layout.clone() else {
            return Err(Error::Unsupported {
                device: self.name.clone(),
                kind: crate::ConstraintKind::Import,
                detail: format!("cannot allocate {:?}", request.kind),
            });
        };
        Ok(crate::Exported::new(memfd(layout.size), layout))
    }
    fn import(&self, buffer: &Buffer) -> Result<crate::Import> {
        if self.fail_import {
            return Err(Error::io(
                "PRIME import",
                std::io::Error::from_raw_os_error(22),
            ));
        }
        self.live.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(MockImport {
            device: self.name.clone(),
            _buffer: buffer.clone(),
            live: Arc::clone(&self.live),
        }))
    }
}

/// Coerces to the trait object the allocator takes.
pub(crate) fn dynimp(i: &Arc<MockImporter>) -> Arc<dyn Importer> {
    Arc::clone(i) as Arc<dyn Importer>
}

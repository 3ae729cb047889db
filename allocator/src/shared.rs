//! A buffer imported into every device that shares it, with late attach and migration.

use std::sync::Arc;

use crate::{
    merge, Allocator, Buffer, CachePolicy, ConstraintKind, CpuAccess, Error, Import, Imported,
    Importer, Plan, Result,
};

/// One dma-buf, the imports of every device sharing it (in the plan's importer order), and
/// the plan it was allocated from. Dropping it releases every import, then the buffer.
#[derive(Debug)]
pub struct SharedBuffer {
    imports: Vec<Import>,
    buffer: Buffer,
    plan: Plan,
}

/// Imports `buffer` into every importer; on the first failure, releases the imports made so
/// far and returns an error naming the device.
fn import_all(buffer: &Buffer, importers: &[Arc<dyn Importer>]) -> Result<Vec<Import>> {
    importers
        .iter()
        .map(|imp| import_one(imp, buffer))
        .collect()
}

/// Imports `buffer` into `importer`; an error names the device.
fn import_one(importer: &Arc<dyn Importer>, buffer: &Buffer) -> Result<Import> {
    importer
        .import(buffer)
        .map_err(|e| name_device(importer.name(), e))
}

/// Makes sure an import error says which device failed.
fn name_device(device: &str, e: Error) -> Error {
    match e {
        Error::Import { .. }
        | Error::Unsupported { .. }
        | Error::Incompatible { .. }
        | Error::Device { .. } => e,
        Error::Io { context, error } => Error::Import {
            device: device.to_owned(),
            step: context,
            source: error,
        },
        other => Error::Device {
            device: device.to_owned(),
            source: Box::new(other),
        },
    }
}

impl SharedBuffer {
    /// Imports `buffer` (allocated from `plan`) into every device of the plan; on the first
    /// failure, releases the imports made so far (and the buffer, unless shared elsewhere)
    /// and returns an error naming the device.
    pub(crate) fn import(buffer: Buffer, plan: Plan) -> Result<Self> {
        let imports = import_all(&buffer, plan.importers())?;
        Ok(SharedBuffer {
            imports,
            buffer,
            plan,
        })
    }

    /// The dma-buf.
    pub fn buffer(&self) -> &Buffer {
        &self.buffer
    }

    /// Every device's import, in importer order.
    pub fn imports(&self) -> &[Import] {
        &self.imports
    }

    /// The import held by the device called `device`.
    pub fn import_for(&self, device: &str) -> Option<&dyn Imported> {
        self.imports
            .iter()
            .find(|i| i.device() == device)
            .map(|b| &**b)
    }

    /// The first import of the backend type `T` (e.g. `cenalloc_drm::DrmImport` for its GEM
    /// handle and framebuffer).
    pub fn import_of<T: Imported>(&self) -> Option<&T> {
        self.imports.iter().find_map(|i| i.downcast_ref::<T>())
    }

    /// The devices sharing the buffer.
    pub fn importers(&self) -> &[Arc<dyn Importer>] {
        self.plan.importers()
    }

    /// The plan the buffer was allocated from.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Splits into the buffer, the imports and the plan.
    pub fn into_parts(self) -> (Buffer, Vec<Import>, Plan) {
        (self.buffer, self.imports, self.plan)
    }

    /// Adds a device after allocation. Succeeds only if the existing buffer satisfies the
    /// newcomer (layout, modifier, memory contiguity, cache policy, protection) and the
    /// newcomer agrees with every device already attached; otherwise [`Error::Incompatible`]
    /// says why, and nothing changes.
    pub fn attach_late(&mut self, importer: Arc<dyn Importer>) -> Result<()> {
        let name = importer.name().to_owned();
        let incompatible = |kind, reason: String| Error::Incompatible {
            device: name.clone(),
            kind,
            reason,
        };
        let request = self.plan.request();
        let mine = importer.constraints(request)?;
        let mut all = Vec::with_capacity(self.importers().len() + 1);
        for imp in self.importers() {
            all.push(imp.constraints(request)?);
        }
        all.push(mine.clone());
        let names: Vec<&str> = self
            .importers()
            .iter()
            .map(|i| i.name())
            .chain(std::iter::once(name.as_str()))
            .collect();
        let merged = match merge(request, names.iter().copied().zip(all.iter())) {
            Ok(m) => m,
            Err(Error::Conflict {
                kind,
                first,
                first_wants,
                second,
                second_wants,
            }) => {
                return Err(incompatible(
                    kind,
                    format!("{first} needs {first_wants}, but {second} needs {second_wants}"),
                ))
            }
            Err(e) => return Err(incompatible(ConstraintKind::Import, e.to_string())),
        };
        self.buffer
            .layout()
            .check(&mine)
            .map_err(|(kind, reason)| incompatible(kind, reason))?;
        let props = self.plan.source_properties();
        let src = &self.plan.source().name;
        if mine.contiguous && !props.contiguous {
            return Err(incompatible(
                ConstraintKind::Contiguous,
                format!("it needs physically contiguous memory, the buffer comes from {src}, which is not"),
            ));
        }
        if mine.protected != props.protected {
            return Err(incompatible(
                ConstraintKind::Protected,
                format!(
                    "it needs protected={}, the buffer from {src} has protected={}",
                    mine.protected, props.protected
                ),
            ));
        }
        match (mine.cache, props.cache) {
            (CachePolicy::Cached, CachePolicy::Uncached)
            | (CachePolicy::Uncached, CachePolicy::Cached) => {
                return Err(incompatible(
                    ConstraintKind::Cache,
                    format!(
                        "it needs {:?} memory, the buffer from {src} is {:?}",
                        mine.cache, props.cache
                    ),
                ))
            }
            _ => {}
        }
        if !mine.can_import {
            return Err(incompatible(
                ConstraintKind::Import,
                "it cannot import a dma-buf allocated elsewhere".into(),
            ));
        }
        if let Some(max) = mine.max_segments.filter(|_| !props.contiguous) {
            let pages = self
                .buffer
                .layout()
                .size
                .div_ceil(crate::source::page_size());
            if pages > u64::from(max) {
                return Err(incompatible(
                    ConstraintKind::MaxSegments,
                    format!("it maps at most {max} segments, the buffer may span {pages} pages"),
                ));
            }
        }
        let import = importer
            .import(&self.buffer)
            .map_err(|e| name_device(&name, e))?;
        self.imports.push(import);
        self.plan = self.plan.with_late_importer(
            importer,
            merged,
            format!("late attach: the existing buffer satisfies {name}"),
        );
        Ok(())
    }

    /// Allocates a new buffer from the current devices' merged constraints, copies the
    /// contents through CPU mappings and re-imports it into every device. Fails with
    /// [`Error::Busy`] (changing nothing) while anything else holds a handle to the buffer.
    pub fn migrate(&mut self, allocator: &Allocator) -> Result<()> {
        self.migrate_inner(allocator, None)
    }

    /// Like [`SharedBuffer::migrate`], adding `importer` to the devices: the way to take in a
    /// device that [`SharedBuffer::attach_late`] refused because the existing buffer does not
    /// suit it (e.g. it needs contiguous memory).
    pub fn migrate_with(
        &mut self,
        allocator: &Allocator,
        importer: Arc<dyn Importer>,
    ) -> Result<()> {
        self.migrate_inner(allocator, Some(importer))
    }

    fn migrate_inner(
        &mut self,
        allocator: &Allocator,
        extra: Option<Arc<dyn Importer>>,
    ) -> Result<()> {
        // Our imports may hold clones of the buffer: release them, then count what is left.
        self.imports.clear();
        let others = self.buffer.handle_count() - 1;
        if others > 0 {
            self.restore_imports()?;
            return Err(Error::Busy(format!(
                "{others} other handle(s) to the buffer are still alive (clones or imports held outside this SharedBuffer)"
            )));
        }
        let mut importers = self.importers().to_vec();
        importers.extend(extra);
        let result = (|| {
            let plan = allocator.plan(self.plan.request(), &importers)?;
            let buffer = allocator.allocate_buffer(&plan)?;
            copy_contents(&self.buffer, &buffer)?;
            let imports = import_all(&buffer, &importers)?;
            Ok((plan, buffer, imports))
        })();
        match result {
            Ok((plan, buffer, imports)) => {
                let from = self.plan.source().name.clone();
                let old = std::mem::replace(&mut self.buffer, buffer);
                drop(old);
                self.imports = imports;
                self.plan = plan.with_reason(format!(
                    "migrated from {from}: allocated anew, contents copied, every device re-imported"
                ));
                Ok(())
            }
            Err(e) => {
                self.restore_imports()?;
                Err(e)
            }
        }
    }

    fn restore_imports(&mut self) -> Result<()> {
        self.imports = import_all(&self.buffer, self.plan.importers())?;
        Ok(())
    }
}

/// Copies `from` into `to`: row by row, plane by plane when both are linear images of the same
/// format, else the bytes both have.
fn copy_contents(from: &Buffer, to: &Buffer) -> Result<()> {
    let src = from.map(CpuAccess::Read)?;
    let mut dst = to.map(CpuAccess::Write)?;
    let (a, b) = (from.layout(), to.layout());
    let same_shape = a.fourcc.is_some()
        && a.fourcc == b.fourcc
        && a.modifier == crate::Modifier::LINEAR
        && b.modifier == crate::Modifier::LINEAR
        && a.planes.len() == b.planes.len();
    let s = src.as_slice();
    let d = dst.as_mut_slice();
    if !same_shape {
        let n = s.len().min(d.len());
        d[..n].copy_from_slice(&s[..n]);
        return Ok(());
    }
    for (pa, pb) in a.planes.iter().zip(&b.planes) {
        if pa.stride == 0 || pb.stride == 0 {
            continue;
        }
        let rows = (pa.size / pa.stride).min(pb.size / pb.stride);
        let row = pa.stride.min(pb.stride) as usize;
        for r in 0..rows {
            let so = (pa.offset + r * pa.stride) as usize;
            let doff = (pb.offset + r * pb.stride) as usize;
            if so + row <= s.len() && doff + row <= d.len() {
                d[doff..doff + row].copy_from_slice(&s[so..so + row]);
            }
        }
    }
    Ok(())
}

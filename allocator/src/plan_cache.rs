//! Plans of recent requests, reused by [`crate::Allocator::allocate_and_import`] for the same
//! request and the same importer objects while every importer gives the constraints the plan
//! was made from. How that is known depends on the importer ([`ConstraintsChange`]): one whose
//! constraints cannot change (a DRM device: they come from a one-time probe) is not asked
//! again; one whose import checks the buffer against its current requirements (a V4L2 queue)
//! is not asked either, and a refused import means planning anew; any other is asked, and a
//! different answer means planning anew. Planning merges, lays out and explains; repeating it
//! for every buffer of a kind costs more than allocating a small one.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use crate::{BufferRequest, Constraints, ConstraintsChange, Importer, Plan};

/// How many (request, importers) pairs are remembered; the least recently planned goes first.
const ENTRIES: usize = 8;

struct Entry {
    request: BufferRequest,
    /// Weak, so that the cache keeps no device open; while the entry exists the allocation
    /// behind each pointer cannot be reused by another importer.
    importers: Vec<Weak<dyn Importer>>,
    /// Where each importer lives (the data pointer of its `Arc`), compared on every lookup;
    /// inline for up to three importers, beside the request.
    addresses: smallvec::SmallVec<[usize; 3]>,
    /// What each importer required when the plan was made.
    constraints: Arc<[Constraints]>,
    /// No importer needs asking before the plan is reused (each declares its constraints
    /// unchanging or checked on import; a property of the object for its life, so asked
    /// once, here).
    unasked: bool,
    /// Some importer checks its constraints on import: a refused import of a buffer of this
    /// plan means they changed.
    checked_on_import: bool,
    plan: Arc<Plan>,
}

/// Where `importer` lives: the key of an entry (its weak reference keeps the address taken).
#[inline(always)]
fn address(importer: &Arc<dyn Importer>) -> usize {
    Arc::as_ptr(importer).cast::<()>() as usize
}

impl Entry {
    #[inline(always)]
    fn matches(&self, request: &BufferRequest, importers: &[Arc<dyn Importer>]) -> bool {
        self.addresses.len() == importers.len()
            && self
                .addresses
                .iter()
                .zip(importers)
                .all(|(&at, a)| at == address(a))
            && self.request == *request
    }
}

/// Recently made plans, shared by the clones of one allocator.
#[derive(Default)]
pub(crate) struct PlanCache {
    entries: Mutex<Vec<Entry>>,
}

impl fmt::Debug for PlanCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.entries.lock().map_or(0, |e| e.len());
        f.debug_struct("PlanCache").field("entries", &n).finish()
    }
}

impl PlanCache {
    /// The plan made earlier for `request` and these very importers, if each importer that
    /// must be asked still gives the constraints it was made from; with it, whether an import
    /// refusing a buffer of the plan means some importer's constraints changed
    /// ([`ConstraintsChange::CheckedOnImport`]).
    #[inline]
    pub(crate) fn get(
        &self,
        request: &BufferRequest,
        importers: &[Arc<dyn Importer>],
    ) -> Option<(Arc<Plan>, bool)> {
        let (plan, checked_on_import, constraints) = {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            let e = entries.iter().find(|e| e.matches(request, importers))?;
            // Nothing to ask (DRM devices, V4L2 queues): the plan stands.
            if e.unasked {
                return Some((e.plan.clone(), e.checked_on_import));
            }
            (e.plan.clone(), e.checked_on_import, e.constraints.clone())
        };
        // Asked outside the lock: a device may answer through an ioctl.
        let unchanged = importers.iter().zip(constraints.iter()).all(|(i, then)| {
            i.constraints_change() != ConstraintsChange::AskEachTime
                || i.constraints(request).is_ok_and(|now| now == *then)
        });
        unchanged.then_some((plan, checked_on_import))
    }

    /// Remembers `plan`, made from `constraints` (one per importer); returns it shared.
    pub(crate) fn keep(
        &self,
        plan: Plan,
        importers: &[Arc<dyn Importer>],
        constraints: Vec<Constraints>,
    ) -> Arc<Plan> {
        let plan = Arc::new(plan);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // Entries whose importers are gone can never match again; an older plan for the same
        // request and importers (their constraints changed) is replaced.
        entries.retain(|e| {
            e.importers.iter().all(|w| w.strong_count() > 0) && !e.matches(&plan.request, importers)
        });
        if entries.len() >= ENTRIES {
            entries.pop();
        }
        entries.insert(
            0,
            Entry {
                request: plan.request.clone(),
                importers: importers.iter().map(Arc::downgrade).collect(),
                addresses: importers.iter().map(address).collect(),
                constraints: constraints.into(),
                unasked: importers
                    .iter()
                    .all(|i| i.constraints_change() != ConstraintsChange::AskEachTime),
                checked_on_import: importers
                    .iter()
                    .any(|i| i.constraints_change() == ConstraintsChange::CheckedOnImport),
                plan: plan.clone(),
            },
        );
        plan
    }
}

//! Plans of recent requests, reused by [`crate::Allocator::allocate_and_import`] while the
//! request and the importers (the same objects) are unchanged and every importer says its
//! constraints cannot change (e.g. a DRM device, whose constraints come from a one-time
//! probe). Planning derives, merges and explains; repeating it for every buffer of a kind
//! would cost more than the allocation of a small buffer.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use crate::{BufferRequest, Importer, Plan};

/// How many (request, importers) pairs are remembered; the least recently planned goes first.
const ENTRIES: usize = 8;

struct Entry {
    request: BufferRequest,
    /// Weak, so that the cache keeps no device open; while the entry exists the allocation
    /// behind each pointer cannot be reused by another importer.
    importers: Vec<Weak<dyn Importer>>,
    plan: Arc<Plan>,
}

impl Entry {
    fn matches(&self, request: &BufferRequest, importers: &[Arc<dyn Importer>]) -> bool {
        self.importers.len() == importers.len()
            && self
                .importers
                .iter()
                .zip(importers)
                .all(|(w, a)| std::ptr::addr_eq(w.as_ptr(), Arc::as_ptr(a)))
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
    /// The plan made earlier for `request` and these very importers, if any.
    pub(crate) fn get(
        &self,
        request: &BufferRequest,
        importers: &[Arc<dyn Importer>],
    ) -> Option<Arc<Plan>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .iter()
            .find(|e| e.matches(request, importers))
            .map(|e| e.plan.clone())
    }

    /// Remembers `plan` if every importer's constraints are stable; returns it shared.
    pub(crate) fn keep(&self, plan: Plan, importers: &[Arc<dyn Importer>]) -> Arc<Plan> {
        let plan = Arc::new(plan);
        if importers.iter().all(|i| i.constraints_are_stable()) {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            // Entries whose importers are gone can never match again.
            entries.retain(|e| e.importers.iter().all(|w| w.strong_count() > 0));
            if entries.len() >= ENTRIES {
                entries.pop();
            }
            entries.insert(
                0,
                Entry {
                    request: plan.request.clone(),
                    importers: importers.iter().map(Arc::downgrade).collect(),
                    plan: plan.clone(),
                },
            );
        }
        plan
    }
}

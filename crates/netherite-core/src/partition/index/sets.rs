//! One ordered set of keys per status: what lets a status filter skip every other status.

use std::collections::{BTreeSet, btree_set};

use super::filter::StatusMask;
use super::key::{KeyRange, SortKey};
use crate::model::OrchestrationStatus;

/// How many statuses there are, so how many sets a [`StatusSets`] holds.
pub(super) const STATUS_COUNT: usize = OrchestrationStatus::ALL.len();

/// The slot of `status` in per-status arrays: its protocol number, `0..STATUS_COUNT`.
pub(super) fn slot(status: OrchestrationStatus) -> usize {
    status as usize
}

/// The keys of a group of instances, split by status, each part sorted by (created, id).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct StatusSets {
    sets: [BTreeSet<SortKey>; STATUS_COUNT],
}

impl StatusSets {
    /// Adds `key` under `status`.
    pub(super) fn insert(&mut self, status: OrchestrationStatus, key: SortKey) {
        self.sets[slot(status)].insert(key);
    }

    /// Removes `key` from under `status`.
    pub(super) fn remove(&mut self, status: OrchestrationStatus, key: &SortKey) {
        self.sets[slot(status)].remove(key);
    }

    /// Whether no status holds a key.
    pub(super) fn is_empty(&self) -> bool {
        self.sets.iter().all(BTreeSet::is_empty)
    }

    /// For each status in `mask` that holds keys, the walk of its keys within `range`.
    pub(super) fn ranges(
        &self,
        mask: StatusMask,
        range: &KeyRange,
    ) -> Vec<btree_set::Range<'_, SortKey>> {
        OrchestrationStatus::ALL
            .into_iter()
            .filter(|&status| mask.contains(status))
            .map(|status| &self.sets[slot(status)])
            .filter(|set| !set.is_empty())
            .map(|set| set.range(range.bounds()))
            .collect()
    }
}

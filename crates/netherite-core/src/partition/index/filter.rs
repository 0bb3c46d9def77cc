//! What a query asks for: statuses, a created range, an id prefix and a name.

use serde::{Deserialize, Serialize};

use super::IndexEntry;
use super::sets::{STATUS_COUNT, slot};
use crate::Timestamp;
use crate::model::OrchestrationStatus;

/// Which instances a query returns: those meeting every condition that is set.
///
/// An empty `statuses` and a `None` field each let every instance through, so
/// `InstanceFilter::default()` matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceFilter {
    /// The statuses to return; empty means any. Repeats are harmless.
    pub statuses: Vec<OrchestrationStatus>,
    /// The earliest creation time returned (inclusive).
    pub created_from: Option<Timestamp>,
    /// The creation time at which results stop (exclusive).
    pub created_to: Option<Timestamp>,
    /// Only ids that start with this string; `Some("")` is the same as `None`.
    pub id_prefix: Option<String>,
    /// Only instances with exactly this name.
    pub name: Option<String>,
}

impl InstanceFilter {
    /// Whether `entry` meets every condition. Page tokens play no part here.
    pub fn matches(&self, entry: &IndexEntry) -> bool {
        let created = entry.created;
        StatusMask::of(&self.statuses).contains(entry.status)
            && self.created_from.is_none_or(|from| created >= from)
            && self.created_to.is_none_or(|to| created < to)
            && self
                .prefix()
                .is_none_or(|prefix| entry.instance_id.as_str().starts_with(prefix))
            && self.name.as_deref().is_none_or(|name| entry.name == name)
    }

    /// The id prefix, if it can exclude anything.
    pub(super) fn prefix(&self) -> Option<&str> {
        self.id_prefix
            .as_deref()
            .filter(|prefix| !prefix.is_empty())
    }
}

/// A set of statuses as flags, one per slot; built once per query.
#[derive(Clone, Copy, Debug)]
pub(super) struct StatusMask([bool; STATUS_COUNT]);

impl StatusMask {
    /// The statuses a filter lets through: all of them when the list is empty.
    pub(super) fn of(statuses: &[OrchestrationStatus]) -> StatusMask {
        if statuses.is_empty() {
            return StatusMask([true; STATUS_COUNT]);
        }
        let mut flags = [false; STATUS_COUNT];
        for &status in statuses {
            flags[slot(status)] = true;
        }
        StatusMask(flags)
    }

    /// Whether `status` is in the set.
    pub(super) fn contains(self, status: OrchestrationStatus) -> bool {
        self.0[slot(status)]
    }
}

//! Tracked object: activities started and not yet completed.
//!
//! A pending activity is kept with everything needed to start it again, because recovery
//! re-issues every pending activity (activities run at least once). Its id stays the same, so
//! whichever run completes first counts and later completions are ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::effect::StartActivity;
use super::event::ActivityId;

/// The pending activities of a partition, by id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Activities {
    pending: BTreeMap<ActivityId, StartActivity>,
}

impl Activities {
    /// Records a started activity.
    pub(crate) fn insert(&mut self, activity: StartActivity) {
        self.pending.insert(activity.activity, activity);
    }

    /// Removes and returns the activity `id`, if it is still pending.
    pub(crate) fn complete(&mut self, id: ActivityId) -> Option<StartActivity> {
        self.pending.remove(&id)
    }

    /// Every pending activity, in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &StartActivity> {
        self.pending.values()
    }

    /// How many are pending.
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }
}

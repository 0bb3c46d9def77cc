//! Tracked object: entities, each an [`EntityRecord`] plus the batch a worker is running.
//!
//! The queue and lock rules live in [`crate::entity`]; this module only keeps the records and
//! enforces one batch in flight per entity. An entity with no state, no queued operations and
//! no lock is dropped: in Durable Entities an entity exists only while it has something.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::event::EpisodeNumber;
use crate::entity::EntityRecord;
use crate::ids::InstanceId;
use crate::model::HistoryEvent;

/// The entities of a partition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entities {
    map: BTreeMap<InstanceId, EntitySlot>,
}

/// One entity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct EntitySlot {
    /// Its durable state, queue and lock.
    pub(crate) record: EntityRecord,
    /// The batch a worker is running.
    pub(crate) in_flight: Option<BatchInFlight>,
}

/// A batch given to a worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct BatchInFlight {
    /// Its number.
    pub(crate) batch: EpisodeNumber,
    /// The operations sent; they stay in the queue until the batch commits.
    pub(crate) operations: Vec<HistoryEvent>,
}

impl Entities {
    /// The entity `id`.
    pub(crate) fn get(&self, id: &InstanceId) -> Option<&EntitySlot> {
        self.map.get(id)
    }

    /// The entity `id`.
    pub(crate) fn get_mut(&mut self, id: &InstanceId) -> Option<&mut EntitySlot> {
        self.map.get_mut(id)
    }

    /// The entity `id`, created empty if needed.
    pub(crate) fn entry(&mut self, id: &InstanceId) -> &mut EntitySlot {
        self.map.entry(id.clone()).or_default()
    }

    /// Drops `id` if nothing is left of it.
    pub(crate) fn prune(&mut self, id: &InstanceId) {
        if self.map.get(id).is_some_and(EntitySlot::is_empty) {
            self.map.remove(id);
        }
    }

    /// Entities in id order, starting after `after`.
    pub(crate) fn iter_after<'a>(
        &'a self,
        after: Option<&InstanceId>,
    ) -> impl Iterator<Item = (&'a InstanceId, &'a EntitySlot)> + 'a {
        use std::ops::Bound::{Excluded, Unbounded};
        let start = after.map_or(Unbounded, |id| Excluded(id.clone()));
        self.map.range((start, Unbounded))
    }

    /// The ids of all entities.
    pub(crate) fn ids(&self) -> Vec<InstanceId> {
        self.map.keys().cloned().collect()
    }

    /// How many entities are tracked.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

impl EntitySlot {
    fn is_empty(&self) -> bool {
        self.in_flight.is_none() && self.record.is_empty()
    }
}

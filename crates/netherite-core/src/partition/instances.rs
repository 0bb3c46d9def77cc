//! Tracked object: orchestration instances, their histories, and what is derived from them.
//!
//! Every change of an instance's existence or status goes through this module, because the
//! secondary index and the per-status counts must move with it in the same update. The index
//! is derived data: it is not part of the checkpoint and is rebuilt when a state is loaded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::index::{IndexEntry, InstanceIndex};
use crate::ids::{ExecutionId, InstanceId};
use crate::model::{
    FailureDetails, HistoryEvent, OrchestrationStatus, ParentInstance, Payload, Tags,
};
use crate::time::Timestamp;

/// The metadata of one orchestration instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InstanceRecord {
    pub(crate) name: String,
    pub(crate) version: Option<String>,
    pub(crate) status: OrchestrationStatus,
    pub(crate) created: Timestamp,
    pub(crate) last_updated: Timestamp,
    pub(crate) completed: Option<Timestamp>,
    pub(crate) input: Payload,
    pub(crate) output: Payload,
    pub(crate) failure: Option<FailureDetails>,
    pub(crate) custom_status: Payload,
    pub(crate) execution_id: ExecutionId,
    pub(crate) parent: Option<ParentInstance>,
    pub(crate) tags: Tags,
    pub(crate) scheduled_start: Option<Timestamp>,
}

/// The instances of a partition with their histories, counts and index.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(from = "Stored")]
pub(crate) struct Instances {
    records: BTreeMap<InstanceId, InstanceRecord>,
    histories: BTreeMap<InstanceId, Vec<HistoryEvent>>,
    counts: BTreeMap<OrchestrationStatus, u64>,
    index: InstanceIndex,
}

/// What of [`Instances`] goes into a checkpoint: everything but the derived data.
#[derive(Deserialize)]
struct Stored {
    records: BTreeMap<InstanceId, InstanceRecord>,
    histories: BTreeMap<InstanceId, Vec<HistoryEvent>>,
}

/// [`Stored`], borrowed, so writing a checkpoint copies nothing.
#[derive(Serialize)]
struct StoredRef<'a> {
    records: &'a BTreeMap<InstanceId, InstanceRecord>,
    histories: &'a BTreeMap<InstanceId, Vec<HistoryEvent>>,
}

impl Serialize for Instances {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let stored = StoredRef {
            records: &self.records,
            histories: &self.histories,
        };
        stored.serialize(serializer)
    }
}

impl From<Stored> for Instances {
    fn from(stored: Stored) -> Instances {
        let mut instances = Instances {
            histories: stored.histories,
            ..Instances::default()
        };
        for (id, record) in stored.records {
            instances.insert(id, record);
        }
        instances
    }
}

impl PartialEq for Instances {
    /// Derived data follows from the rest, so equality looks at records and histories only.
    fn eq(&self, other: &Instances) -> bool {
        self.records == other.records && self.histories == other.histories
    }
}

impl Instances {
    /// The record of `id`.
    pub(crate) fn get(&self, id: &InstanceId) -> Option<&InstanceRecord> {
        self.records.get(id)
    }

    /// The history of the current execution of `id` (empty if unknown).
    pub(crate) fn history(&self, id: &InstanceId) -> &[HistoryEvent] {
        self.histories.get(id).map_or(&[], Vec::as_slice)
    }

    /// Replaces the history of `id`.
    pub(crate) fn set_history(&mut self, id: &InstanceId, history: Vec<HistoryEvent>) {
        self.histories.insert(id.clone(), history);
    }

    /// Appends events to the history of `id`.
    pub(crate) fn append_history(&mut self, id: &InstanceId, events: Vec<HistoryEvent>) {
        self.histories.entry(id.clone()).or_default().extend(events);
    }

    /// Adds (or replaces) an instance.
    pub(crate) fn insert(&mut self, id: InstanceId, record: InstanceRecord) {
        self.remove(&id);
        *self.counts.entry(record.status).or_default() += 1;
        self.index.upsert(index_entry(&id, &record));
        self.records.insert(id, record);
    }

    /// Deletes an instance and its history; returns its record.
    pub(crate) fn remove(&mut self, id: &InstanceId) -> Option<InstanceRecord> {
        let record = self.records.remove(id)?;
        self.histories.remove(id);
        self.uncount(record.status);
        self.index.remove(id);
        Some(record)
    }

    /// Changes the fields of an instance that are not indexed; `change` must leave the status,
    /// name and creation time alone (use [`Instances::set_status`] for the status).
    pub(crate) fn update(&mut self, id: &InstanceId, change: impl FnOnce(&mut InstanceRecord)) {
        if let Some(record) = self.records.get_mut(id) {
            let (status, name, created) = (record.status, record.name.clone(), record.created);
            change(record);
            debug_assert!(
                record.status == status && record.name == name && record.created == created,
                "update must not touch indexed fields"
            );
        }
    }

    /// Sets the status of `id`; returns whether it changed.
    pub(crate) fn set_status(
        &mut self,
        id: &InstanceId,
        status: OrchestrationStatus,
        now: Timestamp,
    ) -> bool {
        let Some(record) = self.records.get_mut(id) else {
            return false;
        };
        record.last_updated = now;
        if record.status == status {
            return false;
        }
        let old = std::mem::replace(&mut record.status, status);
        let entry = index_entry(id, record);
        self.uncount(old);
        *self.counts.entry(status).or_default() += 1;
        self.index.upsert(entry);
        true
    }

    /// The number of instances per status, statuses with none left out.
    pub(crate) fn counts(&self) -> Vec<(OrchestrationStatus, u64)> {
        self.counts.iter().map(|(s, n)| (*s, *n)).collect()
    }

    /// The secondary index.
    pub(crate) fn index(&self) -> &InstanceIndex {
        &self.index
    }

    fn uncount(&mut self, status: OrchestrationStatus) {
        if let Some(n) = self.counts.get_mut(&status) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&status);
            }
        }
    }
}

fn index_entry(id: &InstanceId, record: &InstanceRecord) -> IndexEntry {
    IndexEntry {
        instance_id: id.clone(),
        status: record.status,
        created: record.created,
        name: record.name.clone(),
    }
}

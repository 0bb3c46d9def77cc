//! The secondary index of instances (being written).
//!
//! Planned API, fixed so the state machine can use it while it is being written:
//!
//! ```text
//! IndexEntry { instance_id, status, created: Timestamp, name }
//! InstanceIndex::new() / upsert(entry) / remove(&id) / len()
//! InstanceIndex::query(&InstanceFilter, &PageRequest) -> Page
//! InstanceFilter { statuses: Vec<OrchestrationStatus> (empty = any), created_from,
//!                  created_to: Option<Timestamp> (inclusive from, exclusive to),
//!                  id_prefix: Option<String>, name: Option<String> }
//! PageRequest { after: Option<PageToken>, size: usize }
//! Page { ids: Vec<InstanceId>, next: Option<PageToken> }  // ordered by (created, id)
//! ```

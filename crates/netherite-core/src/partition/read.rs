//! Reads: questions answered from the state without changing it. A host answers its own
//! process's reads without logging them; a client in another process asks through the
//! partition's input (`ClientRequest::Read`), which is logged like any request.
//!
//! A read sees the state as applied so far, which may include updates not yet durable; the
//! engine decides whether to wait for durability before answering. An unknown instance or
//! entity is an answer (`None`), not an error.

use serde::{Deserialize, Serialize};

use super::PartitionState;
use super::index::{InstanceFilter, PageRequest};
use super::view::{EntityPage, EntityView, InstancePage, InstanceView};
use crate::ids::InstanceId;
use crate::model::{EntityId, HistoryEvent};
use crate::time::Timestamp;

/// A question for a partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadEvent {
    /// One instance.
    GetInstance {
        /// The instance.
        instance: InstanceId,
        /// Whether to include input, output and failure.
        payloads: bool,
    },
    /// The history of an instance's current execution.
    GetHistory {
        /// The instance.
        instance: InstanceId,
    },
    /// A page of instances matching a filter.
    Query {
        /// Which instances.
        filter: InstanceFilter,
        /// Which page; the size is capped at `query_page_max` (0 asks for that many).
        page: PageRequest,
        /// Whether to include input, output and failure.
        payloads: bool,
    },
    /// One entity.
    GetEntity {
        /// The entity.
        entity: InstanceId,
        /// Whether to include its state.
        include_state: bool,
    },
    /// A page of entities.
    QueryEntities(EntityQuery),
}

/// A query over entities, paged by id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityQuery {
    /// Only ids starting with this (e.g. `@counter@`).
    pub id_prefix: Option<String>,
    /// Only entities modified at or after this time.
    pub modified_from: Option<Timestamp>,
    /// Only entities modified before this time.
    pub modified_to: Option<Timestamp>,
    /// Whether to include states.
    pub include_state: bool,
    /// Whether to include entities without state (kept only by locks or queued operations).
    pub include_transient: bool,
    /// Start after this id (the previous page's `next`).
    pub after: Option<InstanceId>,
    /// The page size, capped at `query_page_max` (0 asks for that many).
    pub size: usize,
}

/// The answer to a [`ReadEvent`], one variant per question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadResult {
    /// For `GetInstance`.
    Instance(Option<Box<InstanceView>>),
    /// For `GetHistory`.
    History(Option<Vec<HistoryEvent>>),
    /// For `Query`.
    Instances(InstancePage),
    /// For `GetEntity`: `None` if unknown or without state.
    Entity(Option<EntityView>),
    /// For `QueryEntities`.
    Entities(EntityPage),
}

impl PartitionState {
    /// Answers a read.
    pub fn read(&self, event: &ReadEvent) -> ReadResult {
        match event {
            ReadEvent::GetInstance { instance, payloads } => {
                ReadResult::Instance(self.instance_view(instance, *payloads).map(Box::new))
            }
            ReadEvent::GetHistory { instance } => {
                let history = self
                    .instances
                    .get(instance)
                    .map(|_| self.instances.history(instance));
                ReadResult::History(history.map(<[HistoryEvent]>::to_vec))
            }
            ReadEvent::Query {
                filter,
                page,
                payloads,
            } => ReadResult::Instances(self.query(filter, page, *payloads)),
            ReadEvent::GetEntity {
                entity,
                include_state,
            } => ReadResult::Entity(self.entity_view(entity, *include_state)),
            ReadEvent::QueryEntities(query) => ReadResult::Entities(self.query_entities(query)),
        }
    }

    fn instance_view(&self, id: &InstanceId, payloads: bool) -> Option<InstanceView> {
        let record = self.instances.get(id)?;
        Some(InstanceView::of(id, record, payloads))
    }

    fn query(&self, filter: &InstanceFilter, page: &PageRequest, payloads: bool) -> InstancePage {
        let request = PageRequest {
            after: page.after.clone(),
            size: self.page_size(page.size),
        };
        let found = self.instances.index().query(filter, &request);
        let views = found
            .ids
            .iter()
            .filter_map(|id| self.instance_view(id, payloads));
        InstancePage {
            instances: views.collect(),
            next: found.next,
        }
    }

    fn entity_view(&self, id: &InstanceId, include_state: bool) -> Option<EntityView> {
        let id = EntityId::parse(id.as_str()).ok()?.instance_id();
        let slot = self.entities.get(&id)?;
        slot.record.state.as_ref()?;
        Some(EntityView::of(&id, &slot.record, include_state))
    }

    fn query_entities(&self, query: &EntityQuery) -> EntityPage {
        let size = self.page_size(query.size);
        let matching = self
            .entities
            .iter_after(query.after.as_ref())
            .filter(|(id, slot)| entity_matches(query, id, &slot.record));
        let mut entities: Vec<EntityView> = matching
            .take(size.saturating_add(1))
            .map(|(id, slot)| EntityView::of(id, &slot.record, query.include_state))
            .collect();
        let next = if entities.len() > size {
            entities.truncate(size);
            entities.last().map(|v| v.entity.clone())
        } else {
            None
        };
        EntityPage { entities, next }
    }

    fn page_size(&self, asked: usize) -> usize {
        let max = self.config.limits.query_page_max;
        if asked == 0 { max } else { asked.min(max) }
    }
}

fn entity_matches(
    query: &EntityQuery,
    id: &InstanceId,
    record: &crate::entity::EntityRecord,
) -> bool {
    let prefix_ok = query
        .id_prefix
        .as_ref()
        .is_none_or(|p| id.as_str().starts_with(p.as_str()));
    let modified = record.last_modified;
    let from_ok = query
        .modified_from
        .is_none_or(|from| modified.is_some_and(|m| m >= from));
    let to_ok = query
        .modified_to
        .is_none_or(|to| modified.is_some_and(|m| m < to));
    let state_ok = query.include_transient || record.state.is_some();
    prefix_ok && from_ok && to_ok && state_ok
}

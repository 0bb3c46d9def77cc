//! Requests that span partitions: queries merged across them, and purges.
//!
//! A query asks every partition for one page after the same token and merges the answers in
//! (created, id) order. Each partition's page holds its own first matches after the token, so
//! the merged first `size` are the task hub's first `size`; the token of the merged page is
//! the key of its last entry ([`PageToken::resuming_after`]), which every partition
//! understands, since the index orders all partitions' instances by the same key.

use futures::future::try_join_all;
use netherite_core::model::{EventKind, HistoryEvent};
use netherite_core::partition::index::{InstanceFilter, PAGE_SIZE_MAX, PageRequest, PageToken};
use netherite_core::partition::{
    ClientRequest, ClientResponse, InstancePage, InstanceView, ReadEvent, ReadResult,
};
use netherite_core::{InstanceId, PartitionId};

use super::{Client, TERMINAL, rejected, unexpected, unexpected_read};
use crate::Error;

/// One page of a query across all partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryPage {
    /// The instances, ordered by creation time, then id.
    pub instances: Vec<InstanceView>,
    /// The token for the next page; `None` on the last page.
    pub next: Option<String>,
}

impl Client {
    /// One page of the instances matching `filter` (statuses, creation range, id prefix,
    /// name), across all partitions, in creation order; `page_token` is the previous page's
    /// `next`, and `page_size` is capped at 1000 (0 asks for 100).
    pub async fn query(
        &self,
        filter: &InstanceFilter,
        page_token: Option<&str>,
        page_size: usize,
    ) -> Result<QueryPage, Error> {
        let after = match page_token {
            Some(text) => Some(PageToken::parse(text).map_err(|e| Error::InvalidRequest {
                reason: format!("bad page token: {e}"),
            })?),
            None => None,
        };
        let page = PageRequest {
            after,
            size: page_size,
        };
        let size = page.size_served();
        let reads = (0..self.partition_count()).map(|p| self.query_partition(p, filter, &page));
        let pages = try_join_all(reads).await?;
        Ok(merge(pages, size))
    }

    /// Deletes the instance and its history; it must have finished. With `recursive`, its
    /// sub-orchestrations (as the current execution's history names them) go first. Returns
    /// how many instances were deleted.
    pub async fn purge(&self, instance: &InstanceId, recursive: bool) -> Result<u64, Error> {
        let mut count = 0;
        if recursive {
            for child in self.children(instance).await? {
                count += Box::pin(self.purge_if_present(&child)).await?;
            }
        }
        let request = ClientRequest::Purge {
            instance: instance.clone(),
        };
        match self.call(instance, request).await? {
            ClientResponse::Purged { count: purged, .. } => Ok(count + purged),
            other => Err(unexpected("Purge", &other)),
        }
    }

    /// Deletes every finished instance matching `filter`, on every partition; with
    /// `recursive`, their sub-orchestrations too. Running instances are left alone. Returns
    /// how many instances were deleted.
    pub async fn purge_by_filter(
        &self,
        filter: &InstanceFilter,
        recursive: bool,
    ) -> Result<u64, Error> {
        if recursive {
            return self.purge_each(filter).await;
        }
        let purges =
            (0..self.partition_count()).map(|p| self.purge_partition(PartitionId(p), filter));
        Ok(try_join_all(purges).await?.into_iter().sum())
    }

    async fn query_partition(
        &self,
        partition: u32,
        filter: &InstanceFilter,
        page: &PageRequest,
    ) -> Result<InstancePage, Error> {
        let read = ReadEvent::Query {
            filter: filter.clone(),
            page: page.clone(),
            payloads: true,
        };
        match self.read(PartitionId(partition), read).await? {
            ReadResult::Instances(page) => Ok(page),
            other => Err(unexpected_read("Query", &other)),
        }
    }

    /// Purges one partition's matches, a bounded number per request, until none remain.
    async fn purge_partition(
        &self,
        partition: PartitionId,
        filter: &InstanceFilter,
    ) -> Result<u64, Error> {
        let mut total = 0;
        loop {
            let request = ClientRequest::PurgeByFilter {
                filter: filter.clone(),
            };
            match self.call_partition(partition, request).await? {
                ClientResponse::Purged { count, complete } => {
                    total += count;
                    if complete {
                        return Ok(total);
                    }
                }
                ClientResponse::Rejected(rejection) => return Err(rejected(rejection, "a purge")),
                other => return Err(unexpected("PurgeByFilter", &other)),
            }
        }
    }

    /// Purges the finished matches of `filter` one by one, each with its children.
    async fn purge_each(&self, filter: &InstanceFilter) -> Result<u64, Error> {
        let mut finished = filter.clone();
        finished.statuses = if filter.statuses.is_empty() {
            TERMINAL.to_vec()
        } else {
            filter
                .statuses
                .iter()
                .copied()
                .filter(|s| s.is_terminal())
                .collect()
        };
        if finished.statuses.is_empty() {
            return Ok(0);
        }
        let (mut count, mut token) = (0, None);
        loop {
            let page = self
                .query(&finished, token.as_deref(), PAGE_SIZE_MAX)
                .await?;
            for view in &page.instances {
                count += self.purge_if_present(&view.instance_id).await?;
            }
            match page.next {
                Some(next) => token = Some(next),
                None => return Ok(count),
            }
        }
    }

    /// Purges `instance` with its children; an instance already gone counts as none.
    async fn purge_if_present(&self, instance: &InstanceId) -> Result<u64, Error> {
        match self.purge(instance, true).await {
            Err(Error::NotFound { .. }) => Ok(0),
            other => other,
        }
    }

    /// The sub-orchestrations the instance's current execution created.
    async fn children(&self, instance: &InstanceId) -> Result<Vec<InstanceId>, Error> {
        let history = match self.history(instance).await {
            Ok(history) => history,
            Err(Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        Ok(history.iter().filter_map(child_of).collect())
    }
}

fn child_of(event: &HistoryEvent) -> Option<InstanceId> {
    match &event.kind {
        EventKind::SubOrchestrationCreated(created) => Some(created.instance_id.clone()),
        _ => None,
    }
}

/// The first `size` instances of all `pages`, in (created, id) order, and the next token.
fn merge(pages: Vec<InstancePage>, size: usize) -> QueryPage {
    let more_somewhere = pages.iter().any(|page| page.next.is_some());
    let mut instances: Vec<InstanceView> = pages.into_iter().flat_map(|p| p.instances).collect();
    instances.sort_by(|a, b| (a.created, &a.instance_id).cmp(&(b.created, &b.instance_id)));
    let more = more_somewhere || instances.len() > size;
    instances.truncate(size);
    let next = instances
        .last()
        .filter(|_| more)
        .map(|last| PageToken::resuming_after(last.created, last.instance_id.clone()));
    QueryPage {
        instances,
        next: next.map(|token| token.to_token_string()),
    }
}

#[cfg(test)]
mod tests {
    use netherite_core::Timestamp;
    use netherite_core::model::OrchestrationStatus;

    use super::*;

    fn view(id: &str, secs: i64) -> InstanceView {
        InstanceView {
            instance_id: InstanceId::new(id),
            name: "N".into(),
            version: None,
            status: OrchestrationStatus::Completed,
            created: Timestamp::new(secs, 0),
            last_updated: Timestamp::new(secs, 0),
            completed: None,
            scheduled_start: None,
            execution_id: netherite_core::ExecutionId::new("e"),
            parent_instance_id: None,
            tags: Default::default(),
            custom_status: None,
            input: None,
            output: None,
            failure: None,
        }
    }

    fn page(views: Vec<InstanceView>, more: bool) -> InstancePage {
        let next = views
            .last()
            .filter(|_| more)
            .map(|v| PageToken::resuming_after(v.created, v.instance_id.clone()));
        InstancePage {
            instances: views,
            next,
        }
    }

    /// Pages of two partitions interleave by creation time; the token resumes after the last.
    #[test]
    fn merged_pages_keep_creation_order() {
        let a = page(vec![view("a1", 1), view("a3", 3)], true);
        let b = page(vec![view("b2", 2), view("b4", 4)], false);

        let merged = merge(vec![a, b], 3);

        let ids: Vec<_> = merged
            .instances
            .iter()
            .map(|v| v.instance_id.as_str())
            .collect();
        assert_eq!(ids, ["a1", "b2", "a3"]);
        let token = PageToken::parse(&merged.next.expect("more to come")).expect("parses");
        assert_eq!(
            token,
            PageToken::resuming_after(Timestamp::new(3, 0), InstanceId::new("a3"))
        );
    }

    /// When everything fits and no partition has more, there is no next page.
    #[test]
    fn last_page_has_no_token() {
        let merged = merge(
            vec![page(vec![view("a", 1)], false), page(vec![], false)],
            10,
        );
        assert_eq!((merged.instances.len(), merged.next), (1, None));
    }
}

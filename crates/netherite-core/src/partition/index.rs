//! The secondary index of instances: by status, creation time and name, for filtered, paged
//! queries that touch only what they return.
//!
//! Netherite had no such index; its queries walked every instance id and read each one to test
//! the filter, so a page could come back short or even empty with more to come. Here the
//! partition keeps [`InstanceIndex`] up to date with the same update events that change its
//! instances, and a query walks only keys that can match.
//!
//! Results are ordered by (created, instance id), and a page resumes strictly after the key
//! its [`PageToken`] holds. The index keeps, besides the entries by id:
//!
//! ```text
//! by_status:  status -> set of (created, id)            a status filter skips other statuses
//! by_name:    name -> status -> set of (created, id)    so does a name filter, with or without
//! ```
//!
//! A query merges the sets of the statuses it wants (one set per status, at most eight), from
//! the later of its `created_from` and its token to its `created_to`, and stops after one
//! result more than the page holds. An id prefix cannot be served in creation order; see
//! the `scan` module for how a prefix query stays cheap whether the prefix is rare or common.
//!
//! API, as the partition state machine uses it:
//!
//! ```text
//! IndexEntry { instance_id, status, created: Timestamp, name }     IndexEntry::new(..)
//! InstanceIndex::new() / upsert(entry) -> Option<old> / remove(&id) -> Option<old>
//!               len() / is_empty() / get(&id)                       also: FromIterator
//! InstanceIndex::query(&InstanceFilter, &PageRequest) -> Page
//! InstanceFilter { statuses: Vec<OrchestrationStatus> (empty = any), created_from,
//!                  created_to: Option<Timestamp> (inclusive from, exclusive to),
//!                  id_prefix: Option<String>, name: Option<String> }   matches(&entry)
//! PageRequest { after: Option<PageToken>, size: usize }   first(size) / after(token, size)
//!             size 0 = PAGE_SIZE_DEFAULT (100), capped at PAGE_SIZE_MAX (1000)
//! Page { ids: Vec<InstanceId>, next: Option<PageToken> }  // ordered by (created, id)
//! PageToken: to_token_string() / parse(&str) -> Result<_, Error> / resuming_after(created, id)
//! ```
//!
//! Serialized, the index is just its entries; the sets are rebuilt on load, so a stored index
//! cannot hold sets that disagree with its entries.
//!
//! ```
//! use netherite_core::model::OrchestrationStatus::{Completed, Running};
//! use netherite_core::partition::index::*;
//! use netherite_core::{InstanceId, Timestamp};
//!
//! let mut index = InstanceIndex::new();
//! for (id, secs) in [("a", 3), ("b", 1), ("c", 2)] {
//!     let created = Timestamp::new(secs, 0);
//!     index.upsert(IndexEntry::new(InstanceId::new(id), Running, created, "Order"));
//! }
//! index.upsert(IndexEntry::new(InstanceId::new("c"), Completed, Timestamp::new(2, 0), "Order"));
//!
//! let running = InstanceFilter { statuses: vec![Running], ..InstanceFilter::default() };
//! let page = index.query(&running, &PageRequest::first(1));
//! assert_eq!(page.ids, [InstanceId::new("b")]);
//!
//! let token = PageToken::parse(&page.next.expect("a is left").to_token_string())?;
//! let page = index.query(&running, &PageRequest::after(token, 1));
//! assert_eq!((page.ids, page.next), (vec![InstanceId::new("a")], None));
//! # Ok::<(), netherite_core::Error>(())
//! ```

mod filter;
mod key;
mod page;
mod scan;
mod sets;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, Serializer};

pub use self::filter::InstanceFilter;
use self::filter::StatusMask;
use self::key::{KeyRange, SortKey};
pub use self::page::{PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, Page, PageRequest, PageToken};
use self::scan::{EntryTest, Found, OrderedScan, PrefixScan};
use self::sets::StatusSets;
use crate::model::OrchestrationStatus;
use crate::{Error, InstanceId, Timestamp};

/// What the index knows of one instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The instance.
    pub instance_id: InstanceId,
    /// Its current status.
    pub status: OrchestrationStatus,
    /// When its current incarnation was created; re-creation moves it in result order.
    pub created: Timestamp,
    /// Its orchestration (or entity) name.
    pub name: String,
}

/// The instances of one partition, indexed for filtered, paged queries.
// TODO: each id is held four times (the map's key and entry, two sets); share one allocation
// per id if the index of a partition with millions of instances grows too large.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<IndexEntry>")]
pub struct InstanceIndex {
    /// Every entry, by id: the truth the sets below are derived from.
    entries: BTreeMap<InstanceId, IndexEntry>,
    /// The keys of all entries, by status.
    by_status: StatusSets,
    /// The keys of each name's entries, by status; a name with no entries has no slot here.
    by_name: BTreeMap<String, StatusSets>,
}

impl IndexEntry {
    /// An entry for `instance_id`.
    pub fn new(
        instance_id: InstanceId,
        status: OrchestrationStatus,
        created: Timestamp,
        name: impl Into<String>,
    ) -> IndexEntry {
        IndexEntry {
            instance_id,
            status,
            created,
            name: name.into(),
        }
    }

    /// Where the entry sits in result order.
    fn sort_key(&self) -> SortKey {
        SortKey {
            created: self.created,
            id: self.instance_id.clone(),
        }
    }
}

impl InstanceIndex {
    /// An empty index.
    pub fn new() -> InstanceIndex {
        InstanceIndex::default()
    }

    /// How many instances the index holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the index holds no instance.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry of `id`, if indexed.
    pub fn get(&self, id: &InstanceId) -> Option<&IndexEntry> {
        self.entries.get(id)
    }

    /// Adds `entry`, or replaces the entry with its id; returns the replaced entry.
    ///
    /// A status change, a rename or a re-creation at a new time all move the instance to
    /// where it now belongs. Upserting an unchanged entry does no work beyond a lookup.
    pub fn upsert(&mut self, entry: IndexEntry) -> Option<IndexEntry> {
        if self.entries.get(&entry.instance_id) == Some(&entry) {
            return Some(entry);
        }

        let previous = self.remove(&entry.instance_id);
        let key = entry.sort_key();
        let by_name = self.by_name.entry(entry.name.clone()).or_default();
        by_name.insert(entry.status, key.clone());
        self.by_status.insert(entry.status, key);
        self.entries.insert(entry.instance_id.clone(), entry);
        previous
    }

    /// Removes the entry of `id`; returns it, or `None` if it was not indexed.
    pub fn remove(&mut self, id: &InstanceId) -> Option<IndexEntry> {
        let entry = self.entries.remove(id)?;
        let key = entry.sort_key();
        self.by_status.remove(entry.status, &key);

        // Drop a name with no entries left, so that equal entries mean equal indexes.
        if let Some(by_name) = self.by_name.get_mut(&entry.name) {
            by_name.remove(entry.status, &key);
            if by_name.is_empty() {
                self.by_name.remove(&entry.name);
            }
        }
        Some(entry)
    }

    /// The page of instances matching `filter` that `request` asks for.
    ///
    /// Costs about `log n` per wanted status plus one step per key visited. Without an id
    /// prefix the keys visited are the page's results and one more; with one, see the module
    /// doc. A `created_from` after `created_to` matches nothing.
    pub fn query(&self, filter: &InstanceFilter, request: &PageRequest) -> Page {
        let size = request.size_served();
        let found = self.find(filter, request.after.as_ref(), size + 1);
        tracing::trace!(
            size,
            returned = found.keys.len().min(size),
            visited = found.visited,
            "instance index query"
        );
        Page::from_found(&found.keys, size)
    }

    /// The first `count` matches of `filter` strictly after `after`, in result order.
    fn find<'a>(
        &'a self,
        filter: &'a InstanceFilter,
        after: Option<&PageToken>,
        count: usize,
    ) -> Found<'a> {
        let after = after.map(PageToken::key);
        let Some(range) = KeyRange::new(filter.created_from, filter.created_to, after) else {
            return Found::default();
        };
        let statuses = StatusMask::of(&filter.statuses);
        let sets = match filter.name.as_deref() {
            None => &self.by_status,
            Some(name) => match self.by_name.get(name) {
                Some(sets) => sets,
                None => return Found::default(),
            },
        };

        let ordered = OrderedScan::new(sets.ranges(statuses, &range), filter.prefix(), count);
        let Some(prefix) = filter.prefix() else {
            return ordered.run();
        };
        let name = filter.name.as_deref();
        let test = EntryTest {
            statuses,
            name,
            range,
        };
        scan::race(ordered, PrefixScan::new(&self.entries, prefix, test, count))
    }
}

impl FromIterator<IndexEntry> for InstanceIndex {
    /// An index of `entries`; of two entries with one id, the later wins.
    fn from_iter<I: IntoIterator<Item = IndexEntry>>(entries: I) -> InstanceIndex {
        let mut index = InstanceIndex::new();
        for entry in entries {
            index.upsert(entry);
        }
        index
    }
}

impl Serialize for InstanceIndex {
    /// Writes the entries only, in id order; the sets are rebuilt from them on load.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.entries.values())
    }
}

impl TryFrom<Vec<IndexEntry>> for InstanceIndex {
    type Error = Error;

    /// The index of stored entries; an id stored twice means the data is corrupt.
    fn try_from(entries: Vec<IndexEntry>) -> Result<InstanceIndex, Error> {
        let mut index = InstanceIndex::new();
        for entry in entries {
            let id = entry.instance_id.clone();
            if index.upsert(entry).is_some() {
                return Err(Error::InvalidArgument {
                    operation: "load instance index",
                    reason: format!("instance {id} is stored twice"),
                });
            }
        }
        Ok(index)
    }
}

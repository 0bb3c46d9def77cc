//! The two ways to find a page's results, and the race that picks between them.
//!
//! An *ordered scan* merges the wanted statuses' sets in (created, id) order and stops once it
//! holds one match more than the page (that one proves a next page exists). Without an id
//! prefix every key it visits is a match, so it touches only what it returns, plus one.
//!
//! An id prefix does not follow creation order, so an ordered scan may wade through many keys
//! that fail it. A *prefix scan* walks the ids that start with the prefix instead, in id order,
//! and keeps the smallest matching keys; it must see every such id before it can answer.
//! Which is cheaper depends on how common the prefix is among the keys in range, and that is
//! not known in advance. So both take one step in turn and the first to finish answers: the
//! work done is at most twice that of the better scan, never a full scan when a cheap one
//! exists.

use std::collections::{BTreeMap, BinaryHeap, btree_map, btree_set};
use std::iter::Peekable;

use super::IndexEntry;
use super::filter::StatusMask;
use super::key::{KeyRange, KeyRef, SortKey};
use crate::InstanceId;

/// The first matches of a query in result order, and the cost of finding them.
#[derive(Debug, Default)]
pub(super) struct Found<'a> {
    /// Up to the count asked for, in (created, id) order.
    pub(super) keys: Vec<KeyRef<'a>>,
    /// How many index keys were looked at.
    pub(super) visited: usize,
}

/// A walk of several sets' ranges merged in key order, keeping keys with the prefix.
pub(super) struct OrderedScan<'a> {
    sources: Vec<Peekable<btree_set::Range<'a, SortKey>>>,
    prefix: Option<&'a str>,
    count: usize,
    found: Found<'a>,
}

/// A walk of the ids that start with a prefix, keeping the smallest keys that match.
pub(super) struct PrefixScan<'a> {
    ids: btree_map::Range<'a, InstanceId, IndexEntry>,
    prefix: &'a str,
    test: EntryTest<'a>,
    count: usize,
    smallest: BinaryHeap<KeyRef<'a>>,
    visited: usize,
}

/// The conditions a prefix scan checks itself, since it reads entries rather than sets.
pub(super) struct EntryTest<'a> {
    /// The statuses wanted.
    pub(super) statuses: StatusMask,
    /// The name wanted, if any.
    pub(super) name: Option<&'a str>,
    /// The keys wanted.
    pub(super) range: KeyRange,
}

/// Runs both scans a step at a time, in turn, and returns the result of the first to finish.
pub(super) fn race<'a>(mut ordered: OrderedScan<'a>, mut by_prefix: PrefixScan<'a>) -> Found<'a> {
    loop {
        if ordered.step() {
            let mut found = ordered.found;
            found.visited += by_prefix.visited;
            return found;
        }
        if by_prefix.step() {
            let visited = ordered.found.visited;
            let mut found = by_prefix.finish();
            found.visited += visited;
            return found;
        }
    }
}

impl<'a> OrderedScan<'a> {
    /// A scan over `sources` for the first `count` keys starting with `prefix`.
    pub(super) fn new(
        sources: Vec<btree_set::Range<'a, SortKey>>,
        prefix: Option<&'a str>,
        count: usize,
    ) -> OrderedScan<'a> {
        OrderedScan {
            sources: sources.into_iter().map(Iterator::peekable).collect(),
            prefix,
            count,
            found: Found::default(),
        }
    }

    /// Steps until finished.
    pub(super) fn run(mut self) -> Found<'a> {
        while !self.step() {}
        self.found
    }

    /// Looks at the next key; true once the scan has its answer.
    fn step(&mut self) -> bool {
        if self.found.keys.len() >= self.count {
            return true;
        }
        let Some(key) = self.pop_smallest() else {
            return true;
        };

        self.found.visited += 1;
        if self
            .prefix
            .is_none_or(|prefix| key.id.as_str().starts_with(prefix))
        {
            self.found.keys.push(key.view());
        }
        self.found.keys.len() >= self.count
    }

    /// The smallest key not yet visited across all sources. Sources are few (one per status),
    /// so a linear look beats keeping a heap.
    fn pop_smallest(&mut self) -> Option<&'a SortKey> {
        let mut smallest: Option<(usize, &'a SortKey)> = None;
        for (at, source) in self.sources.iter_mut().enumerate() {
            if let Some(&key) = source.peek()
                && smallest.is_none_or(|(_, best)| key < best)
            {
                smallest = Some((at, key));
            }
        }
        let (at, _) = smallest?;
        self.sources[at].next()
    }
}

impl<'a> PrefixScan<'a> {
    /// A scan of the ids in `entries` that start with `prefix`, for the `count` smallest keys
    /// that pass `test`.
    pub(super) fn new(
        entries: &'a BTreeMap<InstanceId, IndexEntry>,
        prefix: &'a str,
        test: EntryTest<'a>,
        count: usize,
    ) -> PrefixScan<'a> {
        PrefixScan {
            ids: entries.range(InstanceId::new(prefix)..),
            prefix,
            test,
            count,
            smallest: BinaryHeap::with_capacity(count + 1),
            visited: 0,
        }
    }

    /// Looks at the next id; true once every id with the prefix has been seen.
    fn step(&mut self) -> bool {
        let Some((id, entry)) = self.ids.next() else {
            return true;
        };
        if !id.as_str().starts_with(self.prefix) {
            return true;
        }

        // The heap is a max-heap: past `count` keys, drop the largest.
        self.visited += 1;
        if self.test.passes(entry) {
            self.smallest.push((entry.created, id));
            if self.smallest.len() > self.count {
                self.smallest.pop();
            }
        }
        false
    }

    /// The kept keys in result order.
    fn finish(self) -> Found<'a> {
        Found {
            keys: self.smallest.into_sorted_vec(),
            visited: self.visited,
        }
    }
}

impl EntryTest<'_> {
    /// Whether `entry` has a wanted status and name and a key in range.
    fn passes(&self, entry: &IndexEntry) -> bool {
        self.statuses.contains(entry.status)
            && self.name.is_none_or(|name| entry.name == name)
            && self.range.contains((entry.created, &entry.instance_id))
    }
}

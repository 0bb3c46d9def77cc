//! The order of query results, (created, instance id), and ranges of that order.
//!
//! Every set in the index is sorted by [`SortKey`]. A filter's created range and a page token's
//! resume point then combine into one [`KeyRange`], and serving a page is a walk of that range.

use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::{InstanceId, Timestamp};

/// A key borrowed from the index: creation time, then id. Tuples compare like [`SortKey`].
pub(super) type KeyRef<'a> = (Timestamp, &'a InstanceId);

/// Where an instance sits in result order: by creation time, ties broken by id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(super) struct SortKey {
    /// When the instance was created.
    pub(super) created: Timestamp,
    /// The instance.
    pub(super) id: InstanceId,
}

impl SortKey {
    /// The smallest key at `created`: the empty id sorts before every other id.
    fn first_at(created: Timestamp) -> SortKey {
        SortKey {
            created,
            id: InstanceId::new(""),
        }
    }

    /// The key as a borrowed tuple, to compare with keys of entries without cloning ids.
    pub(super) fn view(&self) -> KeyRef<'_> {
        (self.created, &self.id)
    }
}

/// The keys a query may return: at or after the filter's start, strictly after the page
/// token's key, and strictly before the filter's end.
///
/// ```text
///   created_from          token              created_to
///   [(from, "") ....... (t, id)] ( ........ (to, "") )
///   included          excluded   | walk --> excluded
/// ```
#[derive(Clone, Debug)]
pub(super) struct KeyRange {
    lower: Bound<SortKey>,
    /// The exclusive end, if any: result order never needs an inclusive one.
    upper_excluded: Option<SortKey>,
}

impl KeyRange {
    /// The range, or `None` when no key can lie in it.
    ///
    /// An empty range is refused here rather than passed on, because `BTreeSet::range` panics
    /// on a start past the end, and a client can ask for `created_from > created_to`.
    pub(super) fn new(
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        after: Option<&SortKey>,
    ) -> Option<KeyRange> {
        let from = from.map(SortKey::first_at);
        let lower = match (from, after) {
            (Some(from), Some(after)) if from > *after => Bound::Included(from),
            (_, Some(after)) => Bound::Excluded(after.clone()),
            (Some(from), None) => Bound::Included(from),
            (None, None) => Bound::Unbounded,
        };
        let upper_excluded = to.map(SortKey::first_at);

        let range = KeyRange {
            lower,
            upper_excluded,
        };
        (!range.is_empty()).then_some(range)
    }

    /// The bounds, borrowed, in the form `BTreeSet::range` takes.
    pub(super) fn bounds(&self) -> (Bound<&SortKey>, Bound<&SortKey>) {
        let upper = self
            .upper_excluded
            .as_ref()
            .map_or(Bound::Unbounded, Bound::Excluded);
        (self.lower.as_ref(), upper)
    }

    /// Whether `key` lies in the range.
    pub(super) fn contains(&self, key: KeyRef<'_>) -> bool {
        let above = match &self.lower {
            Bound::Included(lower) => key >= lower.view(),
            Bound::Excluded(lower) => key > lower.view(),
            Bound::Unbounded => true,
        };
        let below = self
            .upper_excluded
            .as_ref()
            .is_none_or(|upper| key < upper.view());
        above && below
    }

    /// Whether no key can lie in the range.
    fn is_empty(&self) -> bool {
        match (&self.lower, &self.upper_excluded) {
            (Bound::Included(lower) | Bound::Excluded(lower), Some(upper)) => lower >= upper,
            _ => false,
        }
    }
}

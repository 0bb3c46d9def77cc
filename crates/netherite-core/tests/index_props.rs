//! Properties of the instance index, checked against a plain map of entries.
//!
//! Ids, times and names are drawn from small sets, so random updates keep hitting the same
//! instances (status changes, re-creation at another time or under another name, removal and
//! return) and many instances share a creation time.

use std::collections::BTreeMap;

use netherite_core::model::OrchestrationStatus;
use netherite_core::partition::index::{
    IndexEntry, InstanceFilter, InstanceIndex, PageRequest, PageToken,
};
use netherite_core::{InstanceId, Timestamp};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;

/// One update to the index.
#[derive(Clone, Debug)]
enum Op {
    Upsert(IndexEntry),
    Remove(InstanceId),
}

/// The model: every entry by id.
type Model = BTreeMap<InstanceId, IndexEntry>;

fn id() -> impl Strategy<Value = InstanceId> {
    "[ab@]{0,3}".prop_map(InstanceId)
}

fn created() -> impl Strategy<Value = Timestamp> {
    (0i64..5, 0u32..2).prop_map(|(secs, nanos)| Timestamp::new(secs, nanos))
}

fn name() -> impl Strategy<Value = String> {
    select(vec!["A", "B", "C"]).prop_map(str::to_owned)
}

fn status() -> impl Strategy<Value = OrchestrationStatus> {
    select(OrchestrationStatus::ALL.to_vec())
}

fn op() -> impl Strategy<Value = Op> {
    let entry = (id(), status(), created(), name())
        .prop_map(|(id, status, created, name)| IndexEntry::new(id, status, created, name));
    prop_oneof![3 => entry.prop_map(Op::Upsert), 1 => id().prop_map(Op::Remove)]
}

fn filter() -> impl Strategy<Value = InstanceFilter> {
    let prefix = option::of("[ab@]{0,2}");
    let range = (option::of(created()), option::of(created()));
    (vec(status(), 0..3), range, prefix, option::of(name())).prop_map(
        |(statuses, (created_from, created_to), id_prefix, name)| InstanceFilter {
            statuses,
            created_from,
            created_to,
            id_prefix,
            name,
        },
    )
}

/// Any short string, or one shaped almost like a token (odd hex, nanos out of range, ...).
fn token_like() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,24}",
        "n1\\.-?[0-9]{1,3}\\.[0-9]{1,10}\\.[0-9a-fA-F]{0,8}"
    ]
}

/// Applies `ops` to an index and to the model.
fn apply(ops: Vec<Op>) -> (InstanceIndex, Model) {
    let mut index = InstanceIndex::new();
    let mut model = Model::new();
    for op in ops {
        match op {
            Op::Upsert(entry) => {
                model.insert(entry.instance_id.clone(), entry.clone());
                index.upsert(entry);
            }
            Op::Remove(id) => {
                model.remove(&id);
                index.remove(&id);
            }
        }
    }
    (index, model)
}

/// The model's answer: a full scan, filtered, sorted by (created, id).
fn scan(model: &Model, filter: &InstanceFilter) -> Vec<InstanceId> {
    let prefix = filter.id_prefix.as_deref().unwrap_or("");
    let mut hits: Vec<_> = model
        .values()
        .filter(|e| filter.statuses.is_empty() || filter.statuses.contains(&e.status))
        .filter(|e| filter.created_from.is_none_or(|from| e.created >= from))
        .filter(|e| filter.created_to.is_none_or(|to| e.created < to))
        .filter(|e| e.instance_id.as_str().starts_with(prefix))
        .filter(|e| filter.name.as_ref().is_none_or(|name| &e.name == name))
        .map(|e| (e.created, e.instance_id.clone()))
        .collect();
    hits.sort();
    hits.into_iter().map(|(_, id)| id).collect()
}

/// Every page of `filter` at `size`, following tokens through their string form; checks that
/// each page but the last is full and that the last is empty only when all of them are.
fn walk(
    index: &InstanceIndex,
    filter: &InstanceFilter,
    size: usize,
) -> Result<Vec<InstanceId>, TestCaseError> {
    let served = PageRequest::first(size).size_served();
    let mut request = PageRequest::first(size);
    let mut ids = Vec::new();

    for _ in 0..=index.len() {
        let page = index.query(filter, &request);
        prop_assert!(page.ids.len() <= served);
        let Some(next) = page.next else {
            prop_assert!(ids.is_empty() || !page.ids.is_empty(), "empty last page");
            ids.extend(page.ids);
            return Ok(ids);
        };

        prop_assert_eq!(page.ids.len(), served, "a page before the last is short");
        ids.extend(page.ids);
        let next = PageToken::parse(&next.to_token_string())
            .map_err(|e| TestCaseError::fail(format!("token does not parse back: {e}")))?;
        request = PageRequest::after(next, size);
    }
    Err(TestCaseError::fail("paging did not end"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// After any updates, for any filter and page size, the pages put together are exactly
    /// the model's full scan, and no page but the last is short.
    #[test]
    fn pages_concatenate_to_a_full_scan(
        ops in vec(op(), 0..60),
        queries in vec((filter(), 0usize..8), 1..8),
    ) {
        let (index, model) = apply(ops);
        prop_assert_eq!(index.len(), model.len());
        for (filter, size) in &queries {
            let paged = walk(&index, filter, *size)?;
            prop_assert_eq!(paged, scan(&model, filter), "filter {:?}, size {}", filter, size);
        }
    }

    /// However an index got its entries, it equals one built from them directly, and storing
    /// and loading it changes nothing: no update leaves a stale key behind.
    #[test]
    fn updates_leave_no_trace_beyond_the_entries(ops in vec(op(), 0..60)) {
        let (index, model) = apply(ops);
        let rebuilt: InstanceIndex = model.values().cloned().collect();
        prop_assert_eq!(&index, &rebuilt);

        let bytes = postcard::to_stdvec(&index).expect("an index always encodes");
        let loaded: InstanceIndex = postcard::from_bytes(&bytes).expect("stored just now");
        prop_assert_eq!(&loaded, &index);
        for (id, entry) in &model {
            prop_assert_eq!(index.get(id), Some(entry));
        }
    }

    /// Parsing any string either fails with an error or yields a token that prints back to a
    /// string parsing to the same token; it never panics.
    #[test]
    fn parsing_any_string_is_total(text in token_like()) {
        if let Ok(token) = PageToken::parse(&text) {
            prop_assert_eq!(PageToken::parse(&token.to_token_string()).ok(), Some(token));
        }
    }
}

//! Stories of the index: each filter, paging at its edges, updates, the cost of a query, token
//! strings and storage.

use super::*;
use crate::model::OrchestrationStatus::{Completed, Failed, Pending, Running, Suspended};

fn at(secs: i64) -> Timestamp {
    Timestamp::new(secs, 0)
}

fn entry(id: &str, status: OrchestrationStatus, secs: i64, name: &str) -> IndexEntry {
    IndexEntry::new(InstanceId::new(id), status, at(secs), name)
}

fn id_strs(ids: &[InstanceId]) -> Vec<&str> {
    ids.iter().map(InstanceId::as_str).collect()
}

/// Every id `filter` matches, read as one page as large as pages get.
fn all(index: &InstanceIndex, filter: &InstanceFilter) -> Vec<String> {
    let page = index.query(filter, &PageRequest::first(PAGE_SIZE_MAX));
    assert_eq!(page.next, None, "the sample fits in one page");
    page.ids.into_iter().map(|id| id.0).collect()
}

/// Six instances of three names, created one second apart, the entity last.
fn sample() -> InstanceIndex {
    InstanceIndex::from_iter([
        entry("b2", Running, 4, "Ship"),
        entry("a1", Running, 1, "Order"),
        entry("c1", Pending, 5, "Order"),
        entry("a2", Completed, 2, "Order"),
        entry("@e@k", Running, 6, "e"),
        entry("b1", Failed, 3, "Ship"),
    ])
}

fn statuses(statuses: &[OrchestrationStatus]) -> InstanceFilter {
    InstanceFilter {
        statuses: statuses.to_vec(),
        ..InstanceFilter::default()
    }
}

/// With no condition set, every instance comes back, in creation order.
#[test]
fn default_filter_returns_everything_in_created_order() {
    let everything = all(&sample(), &InstanceFilter::default());
    assert_eq!(everything, ["a1", "a2", "b1", "b2", "c1", "@e@k"]);
}

/// A status list keeps those statuses only, and listing one twice repeats nothing.
#[test]
fn status_filter_keeps_only_listed_statuses() {
    let index = sample();
    assert_eq!(
        all(&index, &statuses(&[Running, Failed])),
        ["a1", "b1", "b2", "@e@k"]
    );
    assert_eq!(all(&index, &statuses(&[Pending, Pending])), ["c1"]);
    assert!(all(&index, &statuses(&[Suspended])).is_empty());
}

/// `created_from` is inclusive, `created_to` exclusive.
#[test]
fn created_range_includes_its_start_and_excludes_its_end() {
    let filter = InstanceFilter {
        created_from: Some(at(2)),
        created_to: Some(at(4)),
        ..InstanceFilter::default()
    };
    assert_eq!(all(&sample(), &filter), ["a2", "b1"]);
}

/// A range that ends before it starts, or where it starts, matches nothing and does not panic.
#[test]
fn empty_created_range_matches_nothing() {
    for (from, to) in [(4, 2), (3, 3)] {
        let filter = InstanceFilter {
            created_from: Some(at(from)),
            created_to: Some(at(to)),
            ..InstanceFilter::default()
        };
        assert!(all(&sample(), &filter).is_empty());
    }
}

/// An id prefix keeps ids that start with it; the empty prefix keeps everything.
#[test]
fn id_prefix_keeps_ids_starting_with_it() {
    let index = sample();
    let prefix = |p: &str| InstanceFilter {
        id_prefix: Some(p.to_owned()),
        ..InstanceFilter::default()
    };
    assert_eq!(all(&index, &prefix("a")), ["a1", "a2"]);
    assert_eq!(all(&index, &prefix("@")), ["@e@k"]);
    assert_eq!(all(&index, &prefix("")).len(), 6);
    assert!(all(&index, &prefix("a1x")).is_empty());
}

/// A name must match exactly: neither case nor a prefix of it will do.
#[test]
fn name_matches_exactly() {
    let index = sample();
    let named = |n: &str| InstanceFilter {
        name: Some(n.to_owned()),
        ..InstanceFilter::default()
    };
    assert_eq!(all(&index, &named("Order")), ["a1", "a2", "c1"]);
    assert!(all(&index, &named("order")).is_empty());
    assert!(all(&index, &named("Ord")).is_empty());
}

/// Conditions combine: every one must hold.
#[test]
fn conditions_combine() {
    let index = sample();
    let mut filter = InstanceFilter {
        statuses: vec![Running, Pending],
        name: Some("Order".into()),
        ..InstanceFilter::default()
    };
    assert_eq!(all(&index, &filter), ["a1", "c1"]);

    filter.created_from = Some(at(2));
    assert_eq!(all(&index, &filter), ["c1"]);

    filter.id_prefix = Some("a".into());
    assert!(all(&index, &filter).is_empty());
}

/// `matches` tests one entry against each condition, as the query does.
#[test]
fn matches_checks_every_condition() {
    let subject = entry("a1", Running, 5, "Order");
    let filter = InstanceFilter {
        statuses: vec![Running],
        created_from: Some(at(5)),
        created_to: Some(at(6)),
        id_prefix: Some("a".into()),
        name: Some("Order".into()),
    };
    assert!(filter.matches(&subject));

    let fails = [
        InstanceFilter {
            statuses: vec![Completed],
            ..filter.clone()
        },
        InstanceFilter {
            created_from: Some(at(6)),
            ..filter.clone()
        },
        InstanceFilter {
            created_to: Some(at(5)),
            ..filter.clone()
        },
        InstanceFilter {
            id_prefix: Some("b".into()),
            ..filter.clone()
        },
        InstanceFilter {
            name: Some("Ship".into()),
            ..filter.clone()
        },
    ];
    assert!(fails.iter().all(|f| !f.matches(&subject)));
}

/// Instances created at the same time come in id order, and pages split among them cleanly.
#[test]
fn equal_created_times_are_ordered_by_id() {
    let index =
        InstanceIndex::from_iter(["e", "a", "d", "b", "c"].map(|id| entry(id, Running, 7, "Same")));
    let filter = InstanceFilter::default();

    let first = index.query(&filter, &PageRequest::first(2));
    let second = index.query(&filter, &PageRequest::after(first.next.clone().unwrap(), 2));
    let third = index.query(
        &filter,
        &PageRequest::after(second.next.clone().unwrap(), 2),
    );

    assert_eq!(id_strs(&first.ids), ["a", "b"]);
    assert_eq!(id_strs(&second.ids), ["c", "d"]);
    assert_eq!((id_strs(&third.ids), third.next), (vec!["e"], None));
}

/// When results end exactly at a page's end, that page has no next token: no empty page follows.
#[test]
fn full_last_page_has_no_next_token() {
    let index = InstanceIndex::from_iter((0..4).map(|i| entry(&format!("i{i}"), Running, i, "N")));
    let first = index.query(&InstanceFilter::default(), &PageRequest::first(2));
    let next = first.next.expect("two more");
    let second = index.query(&InstanceFilter::default(), &PageRequest::after(next, 2));
    assert_eq!(
        (id_strs(&second.ids), second.next),
        (vec!["i2", "i3"], None)
    );
}

/// A token at or past the last result yields an empty page and no further token.
#[test]
fn token_after_last_element_gives_empty_final_page() {
    let index = sample();
    for (secs, id) in [(6, "@e@k"), (6, "zzz"), (99, "")] {
        let token = PageToken::resuming_after(at(secs), InstanceId::new(id));
        let page = index.query(&InstanceFilter::default(), &PageRequest::after(token, 3));
        assert_eq!(page, Page::default());
    }
}

/// A token before `created_from` does not drag the start back: the later start wins.
#[test]
fn created_from_after_token_wins() {
    let filter = InstanceFilter {
        created_from: Some(at(4)),
        ..InstanceFilter::default()
    };
    let early = PageToken::resuming_after(at(1), InstanceId::new("a1"));
    let page = sample().query(&filter, &PageRequest::after(early, 10));
    assert_eq!(id_strs(&page.ids), ["b2", "c1", "@e@k"]);
}

/// Paging resumes after the token's key even if that instance was deleted meanwhile.
#[test]
fn paging_resumes_after_a_deleted_instance() {
    let mut index = sample();
    let first = index.query(&InstanceFilter::default(), &PageRequest::first(2));
    assert_eq!(id_strs(&first.ids), ["a1", "a2"]);

    index.remove(&InstanceId::new("a2"));
    index.upsert(entry("a0", Running, 0, "Order"));
    let second = index.query(
        &InstanceFilter::default(),
        &PageRequest::after(first.next.unwrap(), 2),
    );
    assert_eq!(id_strs(&second.ids), ["b1", "b2"]);
}

/// Size 0 serves the default page size; sizes above the maximum serve the maximum.
#[test]
fn page_size_zero_is_default_and_large_sizes_are_capped() {
    let index =
        InstanceIndex::from_iter((0..1200).map(|i| entry(&format!("{i:04}"), Running, i, "N")));
    let filter = InstanceFilter::default();

    let default = index.query(&filter, &PageRequest::first(0));
    let capped = index.query(&filter, &PageRequest::first(5000));

    assert_eq!(default.ids.len(), PAGE_SIZE_DEFAULT);
    assert_eq!(capped.ids.len(), PAGE_SIZE_MAX);
    assert!(default.next.is_some() && capped.next.is_some());
}

/// A status change moves an instance out of its old status; upsert returns the old entry.
#[test]
fn status_change_moves_instance_between_statuses() {
    let mut index = sample();
    let old = index.upsert(entry("a1", Completed, 1, "Order"));

    assert_eq!(old, Some(entry("a1", Running, 1, "Order")));
    assert_eq!(all(&index, &statuses(&[Running])), ["b2", "@e@k"]);
    assert_eq!(all(&index, &statuses(&[Completed])), ["a1", "a2"]);
    assert_eq!(index.len(), 6);
}

/// Re-creating an instance at a later time under another name moves it in order and by name.
#[test]
fn recreation_moves_instance_in_order_and_name() {
    let mut index = sample();
    index.upsert(entry("a1", Pending, 9, "Ship"));

    let everything = all(&index, &InstanceFilter::default());
    assert_eq!(everything, ["a2", "b1", "b2", "c1", "@e@k", "a1"]);
    let ship = InstanceFilter {
        name: Some("Ship".into()),
        ..InstanceFilter::default()
    };
    assert_eq!(all(&index, &ship), ["b1", "b2", "a1"]);
}

/// Removing leaves no trace: the index equals one built from the survivors.
#[test]
fn removal_leaves_index_equal_to_a_fresh_one() {
    let mut index = sample();
    assert_eq!(
        index.remove(&InstanceId::new("@e@k")),
        Some(entry("@e@k", Running, 6, "e"))
    );
    assert_eq!(index.remove(&InstanceId::new("@e@k")), None);

    let fresh = InstanceIndex::from_iter(sample().entries.into_values().filter(|e| e.name != "e"));
    assert_eq!(index, fresh);
    assert!(!index.by_name.contains_key("e"));
}

/// Upserting an entry unchanged returns it and changes nothing.
#[test]
fn unchanged_upsert_is_a_no_op() {
    let mut index = sample();
    let same = entry("b1", Failed, 3, "Ship");
    assert_eq!(index.upsert(same.clone()), Some(same));
    assert_eq!(index, sample());
}

/// An index of `count` instances, one per second, every tenth one running, the rest completed.
fn mostly_completed(count: i64) -> InstanceIndex {
    let status = |i: i64| if i % 10 == 0 { Running } else { Completed };
    InstanceIndex::from_iter((0..count).map(|i| entry(&format!("job-{i:04}"), status(i), i, "N")))
}

/// A status query visits its results and the one after them, never the other statuses.
#[test]
fn status_query_visits_only_its_results() {
    let index = mostly_completed(1000);
    let filter = statuses(&[Running]);
    let found = index.find(&filter, None, 6);
    assert_eq!(found.keys.len(), 6);
    assert_eq!(found.visited, 6);
}

/// A rare prefix is found by walking its ids, not the thousand keys in range.
#[test]
fn rare_prefix_query_walks_only_its_ids() {
    let mut index = mostly_completed(1000);
    for i in 0..3 {
        index.upsert(entry(&format!("rare-{i}"), Completed, 2000 + i, "N"));
    }
    let filter = InstanceFilter {
        id_prefix: Some("rare".into()),
        ..InstanceFilter::default()
    };

    let found = index.find(&filter, None, 11);

    let ids: Vec<_> = found.keys.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids, ["rare-0", "rare-1", "rare-2"]);
    assert!(found.visited <= 8, "visited {}", found.visited);
}

/// A prefix every id shares is served in creation order, stopping after the page.
#[test]
fn common_prefix_query_stops_after_the_page() {
    let index = mostly_completed(1000);
    let filter = InstanceFilter {
        id_prefix: Some("job-".into()),
        ..InstanceFilter::default()
    };
    let found = index.find(&filter, None, 6);
    assert_eq!(found.keys.len(), 6);
    assert!(found.visited <= 12, "visited {}", found.visited);
}

/// A token string turns back into the same token, whatever characters the id holds.
#[test]
fn token_string_round_trips_any_id() {
    let keys = [
        (0, 0, ""),
        (-5, 999_999_999, "a.b"),
        (7, 1, "ünï\u{0}"),
        (i64::MAX, 3, "x:y/z"),
    ];
    for (secs, nanos, id) in keys {
        let token = PageToken::resuming_after(Timestamp::new(secs, nanos), InstanceId::new(id));
        let text = token.to_token_string();
        assert!(text.is_ascii(), "{text}");
        assert_eq!(PageToken::parse(&text).unwrap(), token);
        assert_eq!(text.parse::<PageToken>().unwrap(), token);
    }
}

/// Anything that is not a token string is an invalid-argument error, never a panic.
#[test]
fn garbage_token_strings_are_invalid_arguments() {
    let garbage = [
        "",
        "n1",
        "n1.1.0",
        "n2.1.0.61",
        "n1.x.0.61",
        "n1.1.-1.61",
        "n1.1.1000000000.61",
        "n1.1.0.6",
        "n1.1.0.zz",
        "n1.1.0.ff",
        "n1.1.0.61.",
        "n1.1.0.61.62",
        "  n1.1.0.61",
    ];
    for text in garbage {
        let error = PageToken::parse(text).expect_err(text);
        assert!(
            matches!(error, Error::InvalidArgument { .. }),
            "{text}: {error}"
        );
    }
}

/// Stored, an index is its entries; loaded, it is equal to the original and answers the same.
#[test]
fn stored_index_loads_equal() {
    let index = sample();
    let bytes = postcard::to_stdvec(&index).unwrap();
    let entries: Vec<IndexEntry> = postcard::from_bytes(&bytes).unwrap();
    let loaded: InstanceIndex = postcard::from_bytes(&bytes).unwrap();

    assert_eq!(entries.len(), 6);
    assert_eq!(loaded, index);
    assert_eq!(
        all(&loaded, &statuses(&[Running])),
        all(&index, &statuses(&[Running]))
    );
}

/// Stored entries that repeat an id are corrupt and refused.
#[test]
fn stored_index_with_repeated_id_is_refused() {
    let entries = vec![entry("a", Running, 1, "N"), entry("a", Completed, 2, "N")];
    let bytes = postcard::to_stdvec(&entries).unwrap();

    assert!(postcard::from_bytes::<InstanceIndex>(&bytes).is_err());
    let error = InstanceIndex::try_from(entries).unwrap_err();
    assert!(matches!(error, Error::InvalidArgument { .. }), "{error}");
}

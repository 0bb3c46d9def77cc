//! The conformance suite every [`OwnershipStore`] runs.
//!
//! A store supplies fresh, empty stores (a new blob prefix, a new map); its test is one line:
//!
//! ```
//! # let runtime = tokio::runtime::Builder::new_current_thread()
//! #     .enable_all().build().expect("runtime");
//! # runtime.block_on(async {
//! use std::sync::Arc;
//! use netherite_transport_eventhubs::SystemClock;
//! use netherite_transport_eventhubs::ownership::{MemoryOwnershipStore, conformance};
//!
//! conformance::run(|| MemoryOwnershipStore::new(Arc::new(SystemClock))).await;
//! # });
//! ```
//!
//! The report has the shape of the core's suites ([`SuiteReport`]), so it prints the same way.

use netherite_core::PartitionId;
use netherite_core::conformance::{Check, CheckFuture, Step, SuiteReport, Verdict, run_checks};
use netherite_core::transport::NodeId;

use super::{Claimed, OwnershipRecord, OwnershipStore};

/// Runs every check against stores from `make` and panics with the report if any failed.
pub async fn run<S: OwnershipStore + 'static>(make: impl Fn() -> S) -> SuiteReport {
    evaluate(make).await.assert_passed()
}

/// Runs every check against stores from `make` and returns the report, failures included.
pub async fn evaluate<S: OwnershipStore + 'static>(make: impl Fn() -> S) -> SuiteReport {
    run_checks("OwnershipStore", CHECKS, || Box::new(make()) as Box<Store>).await
}

type Store = dyn OwnershipStore;

const CHECKS: &[Check<Store>] = &[
    Check {
        name: "a_new_store_is_empty",
        run: a_new_store_is_empty,
    },
    Check {
        name: "the_first_claim_creates",
        run: the_first_claim_creates,
    },
    Check {
        name: "claims_are_conditional_on_the_etag",
        run: claims_are_conditional_on_the_etag,
    },
    Check {
        name: "a_release_leaves_no_owner",
        run: a_release_leaves_no_owner,
    },
    Check {
        name: "racing_claims_have_one_winner",
        run: racing_claims_have_one_winner,
    },
    Check {
        name: "partitions_are_independent",
        run: partitions_are_independent,
    },
];

fn a() -> NodeId {
    NodeId::new("conformance-a")
}

fn b() -> NodeId {
    NodeId::new("conformance-b")
}

fn won(claimed: Claimed, what: &str) -> Result<OwnershipRecord, String> {
    match claimed {
        Claimed::Won(record) => Ok(record),
        Claimed::Conflict => Err(format!("{what}: a conflict, expected a win")),
    }
}

fn conflict(claimed: Claimed, what: &str) -> Result<(), String> {
    match claimed {
        Claimed::Conflict => Ok(()),
        Claimed::Won(record) => Err(format!("{what}: won {record:?}, expected a conflict")),
    }
}

/// The one record of `partition` as listed.
async fn listed(store: &Store, partition: PartitionId) -> Result<OwnershipRecord, String> {
    let records = store.list().await.step("list")?;
    let mut mine = records.into_iter().filter(|r| r.partition == partition);
    let record = mine.next().ok_or(format!("{partition} is not listed"))?;
    match mine.next() {
        None => Ok(record),
        Some(_) => Err(format!("{partition} is listed twice")),
    }
}

fn same(got: &OwnershipRecord, want: &OwnershipRecord, what: &str) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: listed {got:?}, the claim gave {want:?}"))
    }
}

/// Rule 1: no claim, no record.
fn a_new_store_is_empty(store: &Store) -> CheckFuture<'_> {
    Box::pin(async move {
        let records = store.list().await.step("list")?;
        if !records.is_empty() {
            return Err(format!("a new store lists {records:?}"));
        }
        Ok(Verdict::Passed)
    })
}

/// Rules 1 and 2: a claim expecting no record creates it once; a second such claim conflicts.
fn the_first_claim_creates(store: &Store) -> CheckFuture<'_> {
    Box::pin(async move {
        let p = PartitionId(3);
        let created = won(
            store.claim(p, Some(&a()), None).await.step("create")?,
            "create",
        )?;
        if created.owner != Some(a()) || created.partition != p {
            return Err(format!("the new record is {created:?}"));
        }
        same(&listed(store, p).await?, &created, "after the create")?;

        conflict(
            store
                .claim(p, Some(&b()), None)
                .await
                .step("create again")?,
            "again",
        )?;
        same(&listed(store, p).await?, &created, "after the conflict")?;
        Ok(Verdict::Passed)
    })
}

/// Rule 2: a claim with the current ETag wins and changes the ETag without moving the time
/// back; a claim with an old ETag conflicts and changes nothing.
fn claims_are_conditional_on_the_etag(store: &Store) -> CheckFuture<'_> {
    Box::pin(async move {
        let p = PartitionId(0);
        let first = won(
            store.claim(p, Some(&a()), None).await.step("create")?,
            "create",
        )?;
        let second = store
            .claim(p, Some(&b()), Some(&first.etag))
            .await
            .step("update")?;
        let second = won(second, "update with the current ETag")?;
        if second.etag == first.etag || second.owner != Some(b()) {
            return Err(format!("the update gave {second:?} after {first:?}"));
        }
        if second.last_modified < first.last_modified {
            return Err("last_modified went back".into());
        }

        let stale = store
            .claim(p, Some(&a()), Some(&first.etag))
            .await
            .step("stale")?;
        conflict(stale, "a claim with an old ETag")?;
        same(&listed(store, p).await?, &second, "after the stale claim")?;
        Ok(Verdict::Passed)
    })
}

/// Rules 1 and 2: a release is a claim for nobody; the record stays, without an owner.
fn a_release_leaves_no_owner(store: &Store) -> CheckFuture<'_> {
    Box::pin(async move {
        let p = PartitionId(1);
        let held = won(
            store.claim(p, Some(&a()), None).await.step("create")?,
            "create",
        )?;
        let released = store
            .claim(p, None, Some(&held.etag))
            .await
            .step("release")?;
        let released = won(released, "release")?;
        if released.owner.is_some() {
            return Err(format!("the released record is {released:?}"));
        }
        same(&listed(store, p).await?, &released, "after the release")?;
        let again = store
            .claim(p, Some(&b()), Some(&released.etag))
            .await
            .step("reclaim")?;
        won(again, "a claim of a released record")?;
        Ok(Verdict::Passed)
    })
}

/// Rule 2: of two claims expecting the same ETag at the same time, exactly one wins.
fn racing_claims_have_one_winner(store: &Store) -> CheckFuture<'_> {
    Box::pin(async move {
        let p = PartitionId(2);
        let first = won(
            store.claim(p, Some(&a()), None).await.step("create")?,
            "create",
        )?;
        let (node_a, node_b) = (a(), b());
        let (x, y) = tokio::join!(
            store.claim(p, Some(&node_a), Some(&first.etag)),
            store.claim(p, Some(&node_b), Some(&first.etag)),
        );
        let (x, y) = (x.step("claim a")?, y.step("claim b")?);
        let winners = [&x, &y]
            .iter()
            .filter(|c| matches!(c, Claimed::Won(_)))
            .count();
        if winners != 1 {
            return Err(format!("{winners} of two racing claims won: {x:?}, {y:?}"));
        }
        Ok(Verdict::Passed)
    })
}

/// Rules 1 and 3: writing one partition's record leaves another's as it was.
fn partitions_are_independent(store: &Store) -> CheckFuture<'_> {
    Box::pin(async move {
        let (p, q) = (PartitionId(0), PartitionId(5));
        let at_p = won(
            store.claim(p, Some(&a()), None).await.step("create p")?,
            "p",
        )?;
        let at_q = won(
            store.claim(q, Some(&b()), None).await.step("create q")?,
            "q",
        )?;
        let moved = store
            .claim(p, Some(&b()), Some(&at_p.etag))
            .await
            .step("update p")?;
        won(moved, "update p")?;
        same(&listed(store, q).await?, &at_q, "q after p moved")?;
        Ok(Verdict::Passed)
    })
}

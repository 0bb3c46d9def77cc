//! The blob-backed pieces against Azurite, the Azure Storage emulator: ownership records (the
//! store contract, and nodes balancing through them) and blob batches; and connecting to
//! services that are not there.
//!
//! The storage account comes from `NETHERITE_TEST_AZURITE` (a storage connection string, such
//! as `UseDevelopmentStorage=true;BlobEndpoint=http://127.0.0.1:<port>/devstoreaccount1`).
//! Without it the stories are skipped with a note, except in CI (`CI=true`), where a missing
//! Azurite fails them. Each story works under a prefix no earlier run used.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use azure_core::http::ClientOptions;
use azure_storage_blob::BlobContainerClient;
use netherite_azure::StorageAccount;
use netherite_core::transport::{NodeId, Ownership, OwnershipStream};
use netherite_core::{Error, InputPosition, PartitionId};

use super::blobs::{BlobAsideStore, ensure_container};
use super::records::BlobOwnershipStore;
use crate::aside::{Aside, AsideLimits, AsideStore};
use crate::clock::SystemClock;
use crate::ownership::{Balancer, OwnershipTask, conformance};
use crate::wire::Body;

const CONTAINER: &str = "netherite-eventhubs-tests";

/// The account to test against, or `None` (outside CI) to skip.
fn azurite() -> Option<StorageAccount> {
    let what = "the blob-backed stories on Azurite";
    let text = netherite_core::conformance::outside_service("NETHERITE_TEST_AZURITE", what)?;
    Some(StorageAccount::parse(&text).expect("NETHERITE_TEST_AZURITE parses"))
}

async fn container(account: &StorageAccount) -> Arc<BlobContainerClient> {
    let client = account
        .container_client(CONTAINER, ClientOptions::default())
        .expect("a container client");
    ensure_container(&client).await.expect("the container");
    Arc::new(client)
}

/// A prefix unique to this process and run.
fn fresh(what: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{what}-{run}-{}-{n}", std::process::id())
}

fn records(container: &Arc<BlobContainerClient>, namespace: &str) -> BlobOwnershipStore {
    BlobOwnershipStore::new(container.clone(), namespace, "partitions", "$Default")
}

/// Blob records keep the ownership store contract.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_records_keep_the_store_contract() {
    let Some(account) = azurite() else {
        return;
    };
    let container = container(&account).await;
    let report = conformance::run(|| records(&container, &fresh("conformance"))).await;
    println!("{report}");
}

/// What one node holds, followed through its proposals.
struct Watched {
    stream: OwnershipStream,
    held: BTreeSet<u32>,
}

impl Watched {
    /// Applies every proposal that arrives within `wait` of the last; returns how many came.
    async fn drain(&mut self, wait: Duration) -> usize {
        let mut came = 0;
        while let Ok(Some(proposal)) = tokio::time::timeout(wait, self.stream.next()).await {
            came += 1;
            match proposal {
                Ownership::Acquired(p) => assert!(self.held.insert(p.0), "{p} acquired twice"),
                Ownership::Lost(p) => assert!(self.held.remove(&p.0), "{p} lost but not held"),
            }
        }
        came
    }
}

/// Waits until `settled` holds for the nodes' holdings, reading proposals meanwhile.
async fn settle(nodes: &mut [&mut Watched], settled: impl Fn(&[BTreeSet<u32>]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for node in nodes.iter_mut() {
            node.drain(Duration::from_millis(100)).await;
        }
        let held: Vec<BTreeSet<u32>> = nodes.iter().map(|n| n.held.clone()).collect();
        if settled(&held) {
            return;
        }
        assert!(Instant::now() < deadline, "no settled ownership: {held:?}");
    }
}

fn node(name: &str, store: &BlobOwnershipStore) -> OwnershipTask {
    let balancer = Balancer::new(NodeId::new(name), 4, Duration::from_secs(3));
    let clock = Arc::new(SystemClock);
    OwnershipTask::start(
        balancer,
        Arc::new(store.clone()),
        clock,
        Duration::from_millis(200),
    )
}

/// Two nodes share four partitions through blob records: the first takes all, the second
/// steals its half, and when the first closes, the second is proposed everything at its next
/// round (the release), long before the records' expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_share_partitions_through_blob_records() {
    let Some(account) = azurite() else {
        return;
    };
    let store = records(&container(&account).await, &fresh("balance"));
    let a = node("a", &store);
    let mut on_a = Watched {
        stream: a.watch(),
        held: BTreeSet::new(),
    };
    settle(&mut [&mut on_a], |held| held[0].len() == 4).await;

    // Phase 1: b joins and takes two, one per round.
    let b = node("b", &store);
    let mut on_b = Watched {
        stream: b.watch(),
        held: BTreeSet::new(),
    };
    settle(&mut [&mut on_a, &mut on_b], |held| {
        held[0].len() == 2 && held[1].len() == 2 && held[0].is_disjoint(&held[1])
    })
    .await;
    // Renewals of a settled split propose nothing (five rounds of each node).
    let (moved_a, moved_b) = (
        on_a.drain(Duration::from_secs(1)),
        on_b.drain(Duration::ZERO),
    );
    assert_eq!(
        (moved_a.await, moved_b.await),
        (0, 0),
        "a settled split moved"
    );

    // Phase 2: a closes; b takes over everything.
    let left = Instant::now();
    a.close(Duration::from_secs(5)).await;
    settle(&mut [&mut on_b], |held| held[0].len() == 4).await;
    let took = left.elapsed();
    println!("partitions of the node that closed proposed again after {took:?}");
    assert!(
        took < Duration::from_secs(3),
        "took over only after the expiry: {took:?}"
    );
    b.close(Duration::from_secs(5)).await;
}

/// A blob batch on Azurite: written before its references, read back by byte range, deleted
/// once the discard point passes its last reference, and skipped once gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_batches_live_until_their_events_are_discarded() {
    let Some(account) = azurite() else {
        return;
    };
    let store = Arc::new(BlobAsideStore::new(container(&account).await));
    let prefix = fresh("aside");
    let limits = AsideLimits {
        inline_bytes_max: 100,
        blob_bytes_max: 10 << 20,
        retention: Duration::from_secs(3600),
        sweep_interval: Duration::from_secs(3600),
    };
    let aside = Aside::new(store.clone(), prefix.clone(), limits, Arc::new(SystemClock));
    let p = PartitionId(2);
    let (big1, big2): (Vec<u8>, Vec<u8>) = (vec![1; 300_000], (0..200u8).collect());
    let bodies = aside
        .prepare(p, vec![big1.clone(), b"small".to_vec(), big2.clone()])
        .await
        .expect("stored");
    let listed = store.list(&prefix).await.expect("listed");
    assert_eq!(listed.len(), 1, "{listed:?}");

    // Phase 1: the references read back their payloads.
    let references: Vec<_> = bodies
        .iter()
        .filter_map(|b| match b {
            Body::Aside(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    let got1 = aside
        .fetch(p, &references[0], InputPosition(10))
        .await
        .expect("first")
        .expect("stored");
    let got2 = aside
        .fetch(p, &references[1], InputPosition(12))
        .await
        .expect("second")
        .expect("stored");
    assert!(got1 == big1 && got2 == big2, "the payloads changed");

    // Phase 2: a discard below the last reference keeps the blob; past it, deletes it.
    aside.discard_before(p, InputPosition(12)).await;
    assert_eq!(store.list(&prefix).await.expect("listed").len(), 1);
    aside.discard_before(p, InputPosition(13)).await;
    assert!(store.list(&prefix).await.expect("listed").is_empty());
    let gone = aside.fetch(p, &references[1], InputPosition(14)).await;
    assert!(matches!(gone, Ok(None)), "{gone:?}");
    store
        .delete(&listed[0].name)
        .await
        .expect("deleting twice is fine");
}

/// Services that are not there: connecting fails within the connect timeout with a retryable
/// error, not a hang or a panic; first storage, then (on Azurite) the namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_services_are_a_retryable_error() {
    let nowhere = "UseDevelopmentStorage=true;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1";
    let storage = StorageAccount::parse(nowhere).expect("parses");
    refused(storage).await;

    let Some(account) = azurite() else {
        return;
    };
    refused(account).await;
}

/// Connects to a namespace where nothing listens, with `storage`, and expects an `Io` error.
async fn refused(storage: StorageAccount) {
    let connection = crate::EventHubsConnection::parse(
        "Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=root;SharedAccessKey=a2V5",
    )
    .expect("parses");
    let mut options = super::EventHubsOptions::new(connection, storage, CONTAINER, 2);
    options.connect_timeout = Duration::from_secs(5);

    let started = Instant::now();
    let refused = super::EventHubsTransport::connect(NodeId::new("lonely"), options).await;
    let error = refused.expect_err("nothing listens on port 1");
    assert!(matches!(error, Error::Io { .. }), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    println!("refused after {:?}: {error}", started.elapsed());
}

//! Stories of blob batches against the in-memory store: which payloads go aside, reading them
//! back, and when their blobs are deleted.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use netherite_core::{Error, InputPosition, PartitionId};

use super::*;
use crate::clock::ManualClock;

const LIMITS: AsideLimits = AsideLimits {
    inline_bytes_max: 10,
    blob_bytes_max: 1_000,
    retention: Duration::from_secs(3_600),
    sweep_interval: Duration::from_secs(60),
};

fn setup() -> (ManualClock, Arc<MemoryAsideStore>, Aside) {
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let store = Arc::new(MemoryAsideStore::new(Arc::new(clock.clone())));
    let aside = Aside::new(
        store.clone(),
        "hub/aside".into(),
        LIMITS,
        Arc::new(clock.clone()),
    );
    (clock, store, aside)
}

fn references(bodies: &[Body]) -> Vec<Reference> {
    let aside = |body: &Body| match body {
        Body::Aside(reference) => Some(reference.clone()),
        _ => None,
    };
    bodies.iter().filter_map(aside).collect()
}

/// Small payloads stay inline and large ones share one blob, in send order, numbered, each at
/// its own byte range; a send with no large payload writes no blob.
#[test]
fn large_payloads_of_a_send_share_one_blob_in_order() {
    let payloads = vec![b"a".to_vec(), vec![1; 11], b"b".to_vec(), vec![2; 20]];
    let split = split(payloads, 10, "blob".into());

    let (name, bytes) = split.blob.expect("a blob batch");
    assert_eq!(name, "blob");
    assert_eq!(bytes, [vec![1; 11], vec![2; 20]].concat());
    assert_eq!(split.bodies[0], Body::Payload(b"a".to_vec()));
    assert_eq!(split.bodies[2], Body::Payload(b"b".to_vec()));
    let refs = references(&split.bodies);
    assert_eq!(
        refs.iter()
            .map(|r| (r.entry, r.entries, r.offset, r.length))
            .collect::<Vec<_>>(),
        vec![(0, 2, 0, 11), (1, 2, 11, 20)]
    );

    let small = split_all_small();
    assert!(small.blob.is_none());
    assert_eq!(small.bodies.len(), 2);
}

fn split_all_small() -> Split {
    split(vec![vec![0; 10], Vec::new()], 10, "unused".into())
}

/// A blob batch is read back payload by payload, and deleted only once the discard point
/// passes the last event that refers to it; a copy of one of its events met after that (a batch
/// appended twice) is skipped, not an error that would stop the partition for good. Past the
/// retention a gone blob may have been swept unread, so meeting it is an error.
#[tokio::test]
async fn a_blob_batch_lives_until_every_event_of_it_is_processed() {
    let (clock, store, aside) = setup();
    let p = PartitionId(3);
    let (big1, big2) = (vec![7; 30], vec![8; 40]);
    let bodies = aside
        .prepare(p, vec![b"s".to_vec(), big1.clone(), big2.clone()])
        .await
        .unwrap();
    let refs = references(&bodies);
    assert_eq!(store.names().len(), 1);
    assert!(store.names()[0].starts_with("hub/aside/p0003/"));

    // Phase 1: a reader meets the references at positions 101 and 102.
    assert_eq!(
        aside.fetch(p, &refs[0], InputPosition(101)).await.unwrap(),
        Some(big1)
    );
    assert_eq!(
        aside.fetch(p, &refs[1], InputPosition(102)).await.unwrap(),
        Some(big2)
    );

    // Phase 2: a checkpoint covers the first reference only; the blob stays.
    aside.discard_before(p, InputPosition(102)).await;
    assert_eq!(store.names().len(), 1);

    // Phase 3: it covers both; the blob goes, and a later copy of its last event is skipped.
    aside.discard_before(p, InputPosition(103)).await;
    assert!(store.names().is_empty());
    let copy = aside.fetch(p, &refs[1], InputPosition(107)).await;
    assert_eq!(copy.unwrap(), None);

    // Phase 4: a retention later, the same gone blob could have been swept unread.
    clock.advance(LIMITS.retention);
    let late = aside.fetch(p, &refs[1], InputPosition(108)).await;
    assert!(
        matches!(late, Err(Error::InvalidArgument { .. })),
        "{late:?}"
    );
}

/// A reference naming a blob outside the partition's folder (another partition's, or partition
/// state beside it) is skipped: never read, never noted, so never deleted by a discard.
#[tokio::test]
async fn a_reference_outside_the_partition_folder_is_skipped() {
    let (_, store, aside) = setup();
    let (p, other) = (PartitionId(1), PartitionId(2));
    let bodies = aside.prepare(other, vec![vec![5; 30]]).await.unwrap();
    store.put("p01/log/segment-0", vec![9; 30]).await.unwrap();
    let stray = Reference {
        blob: "p01/log/segment-0".into(),
        entry: 0,
        entries: 1,
        offset: 0,
        length: 30,
    };
    let theirs = references(&bodies).remove(0);

    assert_eq!(
        aside.fetch(p, &stray, InputPosition(4)).await.unwrap(),
        None
    );
    assert_eq!(
        aside.fetch(p, &theirs, InputPosition(5)).await.unwrap(),
        None
    );
    aside.discard_before(p, InputPosition(100)).await;
    assert_eq!(store.names().len(), 2, "nothing was deleted");
}

/// A blob whose last reference never arrived (its send failed halfway and was retried with a
/// new blob) is swept once it is older than the retention, and not before; sweeps of a
/// partition are spaced by the interval.
#[tokio::test]
async fn an_orphaned_blob_is_swept_after_the_retention() {
    let (clock, store, aside) = setup();
    let p = PartitionId(0);
    aside.prepare(p, vec![vec![1; 50]]).await.unwrap();
    let other = aside.prepare(PartitionId(1), vec![vec![1; 50]]);
    other.await.unwrap();

    // Phase 1: the first discard sweeps at once; the blobs are young.
    aside.discard_before(p, InputPosition(1_000)).await;
    assert_eq!(store.names().len(), 2, "young blobs stay");

    // Phase 2: the blobs reach the retention half an interval after the last sweep; the next
    // sweep waits for its interval.
    clock.advance(LIMITS.retention - LIMITS.sweep_interval / 2);
    aside.discard_before(p, InputPosition(1_000)).await;
    clock.advance(LIMITS.sweep_interval / 2);
    aside.discard_before(p, InputPosition(1_000)).await;
    assert_eq!(store.names().len(), 2, "the sweep waits for its interval");

    // Phase 3: a full interval on, partition 0's blob is swept, partition 1's is not.
    clock.advance(LIMITS.sweep_interval / 2);
    aside.discard_before(p, InputPosition(1_000)).await;
    let left = store.names();
    assert_eq!(left.len(), 1);
    assert!(left[0].contains("/p0001/"));
}

/// A send that would put more than the limit aside is refused before anything is written.
#[tokio::test]
async fn too_much_aside_is_refused_by_name() {
    let (_, store, aside) = setup();
    let refused = aside.prepare(PartitionId(0), vec![vec![0; 600], vec![0; 600]]);
    match refused.await {
        Err(Error::LimitExceeded { limit, actual, max }) => {
            assert_eq!((limit, actual, max), ("aside_bytes_max", 1_200, 1_000));
        }
        other => panic!("expected a limit, got {other:?}"),
    }
    assert!(store.names().is_empty());
}

/// A store that hands back fewer bytes than the reference names is a damaged read, retryable.
#[tokio::test]
async fn a_short_read_is_an_io_error() {
    let (_, store, aside) = setup();
    store.put("hub/aside/p0000/b", vec![1; 5]).await.unwrap();
    let reference = Reference {
        blob: "hub/aside/p0000/b".into(),
        entry: 0,
        entries: 1,
        offset: 0,
        length: 9,
    };
    let read = aside
        .fetch(PartitionId(0), &reference, InputPosition(0))
        .await;
    assert!(matches!(read, Err(Error::Io { .. })));
}

//! Store tests that need the crate's insides: unit-test builds give the index 2 tag bits,
//! so every chain holds several keys, and walks that skip other keys' records run through
//! memory, the device, compaction and recovery alike.

use std::collections::BTreeMap;
use std::sync::Arc;

use netherite_core::device::MemoryDisk;
use proptest::prelude::*;

use super::*;

fn config() -> StoreConfig {
    StoreConfig {
        memory_bytes_max: 4 * 64 + 8 * 4096,
        page_bytes: 4096,
        index_buckets: 4,
        mutable_percent: 25,
    }
}

#[derive(Clone, Debug)]
enum Op {
    Upsert(u16, u8, u8),
    Delete(u16),
    Read(u16),
    CheckpointAndRecover,
    Compact(u16),
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0u16..300;
    prop_oneof![
        10 => (k.clone(), any::<u8>(), 0u8..120).prop_map(|(k, b, n)| Op::Upsert(k, b, n)),
        2 => k.clone().prop_map(Op::Delete),
        4 => k.prop_map(Op::Read),
        1 => Just(Op::CheckpointAndRecover),
        1 => (0u16..10_000).prop_map(Op::Compact),
    ]
}

async fn contents(store: &Store) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut live = store.live_records();
    let mut map = BTreeMap::new();
    while let Some((key, value)) = live.next(store).await.expect("scan") {
        assert!(map.insert(key, value).is_none(), "a key seen twice");
    }
    map
}

async fn run(ops: &[Op]) {
    let (log, checkpoints) = (
        MemoryDisk::new(512).expect("2^9"),
        MemoryDisk::new(512).expect("2^9"),
    );
    let devices = || StoreDevices::new(Arc::new(log.open()), Arc::new(checkpoints.open()));
    let mut store = Store::create(devices(), config()).await.expect("created");
    let mut model = BTreeMap::new();
    for op in ops {
        match *op {
            Op::Upsert(k, b, n) => {
                let value = vec![b; usize::from(n)];
                store
                    .upsert(&k.to_le_bytes(), &value)
                    .await
                    .expect("upsert");
                model.insert(k.to_le_bytes().to_vec(), value);
            }
            Op::Delete(k) => {
                store.delete(&k.to_le_bytes()).await.expect("delete");
                model.remove(k.to_le_bytes().as_slice());
            }
            Op::Read(k) => {
                let read = store.read(&k.to_le_bytes()).await.expect("read");
                assert_eq!(read.as_ref(), model.get(k.to_le_bytes().as_slice()));
            }
            Op::CheckpointAndRecover => {
                store.checkpoint(&[]).await.expect("checkpoint");
                (store, _) = Store::recover(devices(), config()).await.expect("recover");
            }
            Op::Compact(bytes) => {
                store.compact(u64::from(bytes)).await.expect("compact");
            }
        }
        assert!(store.memory_bytes() <= config().memory_bytes_max);
    }
    assert_eq!(contents(&store).await, model);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// With 4 tags per bucket and 4 buckets, 300 keys share 16 chains: reads, deletes,
    /// compaction and recovery all walk chains full of other keys, in memory and on the
    /// device, and the store still equals the model.
    #[test]
    fn shared_chains_match_the_model(ops in prop::collection::vec(op(), 1..300)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        runtime.block_on(run(&ops));
    }
}

/// A record larger than a page gets whole pages of its own, is evicted, read back from the
/// device, updated, and survives recovery.
#[tokio::test]
async fn records_larger_than_a_page_round_trip() {
    let (log, checkpoints) = (
        MemoryDisk::new(512).expect("2^9"),
        MemoryDisk::new(512).expect("2^9"),
    );
    let devices = || StoreDevices::new(Arc::new(log.open()), Arc::new(checkpoints.open()));
    let mut store = Store::create(devices(), config()).await.expect("created");
    let big = |b: u8| vec![b; 7000];
    store.upsert(b"small", b"s").await.expect("upsert");
    store.upsert(b"big", &big(1)).await.expect("upsert");
    store.upsert(b"small2", b"t").await.expect("upsert");
    for i in 0u16..400 {
        store
            .upsert(&i.to_le_bytes(), &[0; 64])
            .await
            .expect("filler");
    }
    assert!(
        store.stats().regions.head.get() > 8192,
        "the big record was evicted"
    );
    assert_eq!(store.read(b"big").await.expect("read"), Some(big(1)));

    store.upsert(b"big", &big(2)).await.expect("update");
    store.checkpoint(b"").await.expect("checkpoint");
    let (store, _) = Store::recover(devices(), config()).await.expect("recover");
    assert_eq!(store.read(b"big").await.expect("read"), Some(big(2)));
    assert_eq!(
        store.read(b"small2").await.expect("read"),
        Some(b"t".to_vec())
    );
}

/// The engine runs the store on a multi-threaded runtime: the store and its futures move
/// between threads.
#[test]
fn store_and_its_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    fn sync<T: Sync>() {}
    sync::<Store>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let devices = StoreDevices::new(
            Arc::new(MemoryDisk::new(512).expect("2^9").open()),
            Arc::new(MemoryDisk::new(512).expect("2^9").open()),
        );
        let mut store = Store::create(devices, config()).await.expect("created");
        let upsert = store.upsert(b"k", b"v");
        send(&upsert);
        upsert.await.expect("upsert");
        let read = store.read(b"k");
        send(&read);
        assert_eq!(read.await.expect("read"), Some(b"v".to_vec()));
        let checkpoint = store.checkpoint(b"");
        send(&checkpoint);
        checkpoint.await.expect("checkpoint");
        let compact = store.compact(1 << 20);
        send(&compact);
        compact.await.expect("compact");
    });
}

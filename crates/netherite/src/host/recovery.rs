//! Recovery: from the devices of a partition back to its live state.
//!
//! 1. Open the store and load the newest intact checkpoint (or start from a new state).
//! 2. Open the commit log at the checkpoint's commit position; the log finds its own end and
//!    tells a torn tail (dropped) from damage inside it (an error naming the offset).
//! 3. Replay every durable update after the checkpoint onto the state. Their effects are
//!    dropped: the `Recovered` event the host logs next re-issues whatever is still in flight.
//!
//! Commit positions are the commit log's byte offsets: an update's position is where its
//! record *ends*, which is also where a scan resumes after it and what the log's durable
//! point must reach before anything the update produced may leave the partition.

use std::sync::Arc;
use std::time::Instant;

use netherite_core::codec;
use netherite_core::partition::{PartitionConfig, PartitionState, UpdateEvent};
use netherite_core::{CommitPosition, InputPosition, PartitionId};
use netherite_faster::log::{CommitLog, LogConfig, LogPosition, LogRecord, RecordKind};
use netherite_faster::store::StoreConfig;

use super::checkpoint::{StateStore, storage};
use super::storage::PartitionDevices;
use crate::Error;

/// The commit-log record kind of an encoded [`UpdateEvent`].
pub(crate) const UPDATE_RECORD: u16 = 1;

/// A partition brought back from its devices.
#[derive(Debug)]
pub(crate) struct RecoveredPartition {
    /// The state after the replay.
    pub(crate) state: PartitionState,
    /// The commit log, open for appends.
    pub(crate) log: Arc<CommitLog>,
    /// The store holding the checkpoints.
    pub(crate) store: StateStore,
    /// The positions of the checkpoint recovered, if there was one.
    pub(crate) checkpoint: Option<(CommitPosition, InputPosition)>,
    /// How many updates were replayed.
    pub(crate) replayed: u64,
}

/// Everything recovery needs to know about the partition.
#[derive(Clone, Debug)]
pub(crate) struct RecoveryConfig {
    /// The partition's shape and limits (used for a new state only).
    pub(crate) partition: PartitionConfig,
    /// The commit log's settings.
    pub(crate) log: LogConfig,
    /// The store's settings.
    pub(crate) store: StoreConfig,
}

/// Recovers the partition from `devices` (see the module docs).
pub(crate) async fn recover(
    devices: &PartitionDevices,
    config: &RecoveryConfig,
) -> Result<RecoveredPartition, Error> {
    let partition = config.partition.partition;
    let started = Instant::now();
    let (store, blob) = StateStore::open(partition, devices, config.store.clone()).await?;
    let loaded = store.load(blob, &config.partition).await?;
    let checkpoint = loaded.blob.as_ref().map(|b| b.positions());
    let start = LogPosition(checkpoint.map_or(0, |(commit, _)| commit.0));

    let log = CommitLog::open(devices.log.clone(), start, config.log.clone())
        .await
        .map_err(|e| storage(partition, "opening the commit log", e))?;
    let mut state = loaded.state;
    let replayed = replay(partition, &log, start, &mut state).await?;
    tracing::info!(
        partition = %partition,
        checkpoint = ?checkpoint.map(|(commit, input)| (commit.0, input.0)),
        replayed,
        input = %state.input_position(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "partition state recovered"
    );
    Ok(RecoveredPartition {
        state,
        log: Arc::new(log),
        store,
        checkpoint,
        replayed,
    })
}

/// Applies every durable update from `start` on to `state`; returns how many there were.
async fn replay(
    partition: PartitionId,
    log: &CommitLog,
    start: LogPosition,
    state: &mut PartitionState,
) -> Result<u64, Error> {
    let mut scan = log
        .scan(start)
        .map_err(|e| storage(partition, "scanning the commit log", e))?;
    let mut replayed = 0;
    loop {
        let next = scan.next().await;
        let Some(record) = next.map_err(|e| storage(partition, "reading the commit log", e))?
        else {
            return Ok(replayed);
        };
        let event = decode_update(partition, &record)?;
        let _replayed_effects = state.apply(CommitPosition(record.end.0), &event);
        replayed += 1;
    }
}

/// The update event a commit-log record holds.
fn decode_update(partition: PartitionId, record: &LogRecord) -> Result<UpdateEvent, Error> {
    let corrupt = |reason: String| Error::CorruptRecord {
        partition,
        what: "commit log",
        offset: record.position.0,
        reason,
    };
    if record.kind.value() != UPDATE_RECORD {
        return Err(corrupt(format!("unknown record kind {}", record.kind)));
    }
    let source = format!("partition {partition} commit log");
    let (event, used) = codec::decode::<UpdateEvent>(&record.body, &source, record.position.0)
        .map_err(|e| corrupt(e.to_string()))?;
    if used != record.body.len() {
        return Err(corrupt(format!(
            "{} bytes after the event",
            record.body.len() - used
        )));
    }
    Ok(event)
}

/// The record kind of update events, for appends.
pub(crate) fn update_kind() -> RecordKind {
    RecordKind::new(UPDATE_RECORD).expect("kind 1 is below RecordKind::MAX")
}

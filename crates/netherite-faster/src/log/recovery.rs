//! Recovery: finds where the log ends after a crash, and tells a torn tail from corruption.
//!
//! The walk from the start position ends at the first frame that fails. That is either the
//! tail (the batch being written at the crash, torn or not written at all) or damage inside
//! the durable log. The batch headers after that point tell which: each states the durable
//! point when it was written, so a header past the failed frame that states a durable point
//! past it proves the frame was durable once, and therefore corrupt now. Without such a
//! header the failed frame was never vouched for, and the log ends there.
//!
//! The recovered tail is the last aligned record boundary the walk passed: the next batch
//! starts there, so it never rewrites a byte the walk accepted. Whole records beyond that
//! boundary (in a batch that was written but torn further on) were never durable and are
//! dropped. The new handle's generation is above every generation found on the device, in
//! the chain and beyond it, so nothing left over can ever pass for part of a new batch.

use std::sync::Arc;

use netherite_core::device::LogDevice;

use super::format::{self, BATCH_FRAME_LEN, FrameKind, HEADER_LEN, Header};
use super::walk::{ChainEnd, Step, Walker};
use super::{LogConfig, LogPosition};
use crate::reader::READ_CHUNK;
use crate::{Error, Place};

/// What recovery found when the log was opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Where recovery started reading: the position the log was opened at.
    pub start: LogPosition,
    /// The end of the recovered log: the next batch starts here.
    pub tail: LogPosition,
    /// Where the chain of valid frames ended. Anything from `tail` up to here was whole but
    /// never durable and is dropped; what lies beyond was torn or abandoned.
    pub chain_end: LogPosition,
    /// Why the chain ended there.
    pub chain_end_reason: &'static str,
    /// How many whole records recovery read (some may lie in the dropped part).
    pub records: u64,
    /// The generation of the new handle.
    pub generation: u32,
}

/// What a survey of the bytes after the chain found.
#[derive(Debug, Default)]
struct Survey {
    /// The highest generation of any batch header found.
    generation_max: u32,
    /// The first batch header that vouches for the failed frame: (offset, durable point).
    proof: Option<(u64, u64)>,
}

/// Walks the log from `start` and decides where it ends (see the module docs).
pub(crate) async fn recover(
    device: &Arc<dyn LogDevice>,
    start: u64,
    config: &LogConfig,
) -> Result<Recovery, Error> {
    let size = device.size();
    if start > size {
        let place = Place::new(config.name.as_str(), start);
        return Err(place.corrupt(format!("the device ends at {size}, before the start")));
    }
    let name = config.name.as_str().into();
    let mut walker = Walker::new(name, device.clone(), start, config.read_attempts_max);
    let (end, records) = walk_to_end(&mut walker, size).await?;

    let survey = survey(device, end.at, size).await?;
    if let Some((offset, durable)) = survey.proof {
        let reason = format!(
            "{}, yet the batch at {offset} states the log was durable up to {durable}",
            end.reason
        );
        return Err(Place::new(config.name.as_str(), end.at).corrupt(reason));
    }
    let Some(tail) = walker.boundary() else {
        let reason = format!(
            "{}, before the batch holding the start {start} ended",
            end.reason
        );
        return Err(Place::new(config.name.as_str(), end.at).corrupt(reason));
    };
    let generation = new_generation(walker.generation_max().max(survey.generation_max))?;
    Ok(Recovery {
        start: LogPosition(start),
        tail: LogPosition(tail),
        chain_end: LogPosition(end.at),
        chain_end_reason: end.reason,
        records,
        generation,
    })
}

/// Walks the whole chain; returns where it ends and how many records it holds.
async fn walk_to_end(walker: &mut Walker, size: u64) -> Result<(ChainEnd, u64), Error> {
    let mut records = 0;
    loop {
        match walker.next(size).await? {
            Step::Record(_) => records += 1,
            Step::Limit => {
                let end = ChainEnd {
                    at: size,
                    reason: "the end of the device",
                };
                return Ok((end, records));
            }
            Step::End(end) => return Ok((end, records)),
        }
    }
}

fn new_generation(generation_max: u32) -> Result<u32, Error> {
    generation_max.checked_add(1).ok_or(Error::LimitExceeded {
        limit: "log generations",
        actual: u64::from(generation_max) + 1,
        max: u64::from(u32::MAX),
    })
}

/// Reads every aligned offset from `failed` up to `size` for batch headers, stopping at
/// the first that proves the failed frame was durable.
async fn survey(device: &Arc<dyn LogDevice>, failed: u64, size: u64) -> Result<Survey, Error> {
    let alignment = device.alignment();
    let mut survey = Survey::default();
    let mut chunk_at = failed.next_multiple_of(alignment);
    // Once a proof of corruption is found, the generations no longer matter: stop there.
    while chunk_at + BATCH_FRAME_LEN as u64 <= size && survey.proof.is_none() {
        let len = (size - chunk_at).min((READ_CHUNK + BATCH_FRAME_LEN) as u64) as usize;
        let bytes = device.read(chunk_at, len).await?;
        let mut at = 0;
        while at < READ_CHUNK && at + BATCH_FRAME_LEN <= bytes.len() {
            survey.look_at(
                chunk_at + at as u64,
                &bytes[at..at + BATCH_FRAME_LEN],
                failed,
            );
            at += alignment as usize;
        }
        chunk_at += at as u64;
    }
    Ok(survey)
}

impl Survey {
    /// Notes the batch header at `offset`, if `bytes` hold a valid one.
    fn look_at(&mut self, offset: u64, bytes: &[u8], failed: u64) {
        let header_bytes: &[u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().expect("a header");
        let Ok(header) = Header::decode(header_bytes) else {
            return;
        };
        let body = &bytes[HEADER_LEN..];
        if header.kind != FrameKind::Batch || !header.verify(offset, body) {
            return;
        }
        let durable = format::batch_durable(body).expect("a batch body is 8 bytes");
        if durable > offset {
            return;
        }
        self.generation_max = self.generation_max.max(header.generation);
        if durable > failed && self.proof.is_none() {
            self.proof = Some((offset, durable));
        }
    }
}

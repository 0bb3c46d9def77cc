//! Identifiers and positions, as newtypes so they cannot be mixed up.
//!
//! Instance placement lives here too: an instance belongs to exactly one partition, chosen by
//! [`partition_of`] from its id alone, so every node computes the same answer without asking.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The id of an orchestration or entity instance, chosen by the client.
///
/// Entity ids have the form `@name@key` (see [`crate::model::EntityId`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstanceId(pub String);

/// The id of one execution of an instance; continue-as-new and restart start a new one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ExecutionId(pub String);

/// The index of a partition, `0..partition_count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionId(pub u32);

/// A position in a partition's commit log: the number of update events logged before it.
///
/// Positions are dense, so the event at position `n` is the `n`-th update event ever applied.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct CommitPosition(pub u64);

/// A position in a partition's input stream (a queue offset, a Kafka offset, a sequence number).
///
/// The input position stored with an event is the position of the *next* input to read, so a
/// recovered partition resumes exactly there.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct InputPosition(pub u64);

/// The identity of a client, stable across its requests so they can be deduplicated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientId(pub u128);

/// A client's per-request sequence number; a client never reuses one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestSeq(pub u64);

impl CommitPosition {
    /// The position of an empty log.
    pub const START: CommitPosition = CommitPosition(0);

    /// The position after this one; the last position, `u64::MAX`, has none and stays put
    /// (no log reaches it, and wrapping to the start would be worse).
    pub fn next(self) -> CommitPosition {
        CommitPosition(self.0.saturating_add(1))
    }
}

impl InputPosition {
    /// The first position of every input stream.
    pub const START: InputPosition = InputPosition(0);
}

impl InstanceId {
    /// Wraps a string as an instance id.
    pub fn new(id: impl Into<String>) -> InstanceId {
        InstanceId(id.into())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this id names an entity (`@name@key`).
    pub fn is_entity(&self) -> bool {
        self.0.starts_with('@')
    }
}

impl ExecutionId {
    /// Wraps a string as an execution id.
    pub fn new(id: impl Into<String>) -> ExecutionId {
        ExecutionId(id.into())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{:02}", self.0)
    }
}

impl fmt::Display for CommitPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

impl fmt::Display for InputPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "i{}", self.0)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// FNV-1a, 32 bits, over the given bytes.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    const OFFSET_BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    bytes.iter().fold(OFFSET_BASIS, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(PRIME)
    })
}

/// The partition that owns `id` in a task hub of `partition_count` partitions.
///
/// An id ending in `!n` (decimal `n`) is placed explicitly on partition `n mod P`, so related
/// instances can be put together; any other id goes to `fnv1a32(utf8(id)) mod P`.
///
/// # Panics
///
/// Panics if `partition_count` is zero: a task hub always has at least one partition.
pub fn partition_of(id: &InstanceId, partition_count: u32) -> PartitionId {
    assert!(partition_count > 0, "a task hub has at least one partition");
    if let Some(explicit) = explicit_placement(id.as_str()) {
        return PartitionId((explicit % u64::from(partition_count)) as u32);
    }
    PartitionId(fnv1a32(id.as_str().as_bytes()) % partition_count)
}

/// The `n` of an id ending in `!n`, if it has that form.
fn explicit_placement(id: &str) -> Option<u64> {
    let (_, suffix) = id.rsplit_once('!')?;
    if suffix.is_empty() || !suffix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    suffix.parse().ok()
}

/// A deterministic source of fresh ids, seeded by a value that arrived with an event.
///
/// The engine draws the seed from a random source *outside* the state machine and logs it with
/// the event; replaying the event then yields the same ids. Ids look like GUIDs without dashes.
#[derive(Clone, Debug)]
pub struct IdGen {
    seed: u128,
    drawn: u64,
}

impl IdGen {
    /// A generator for the ids of one event.
    pub fn new(seed: u128) -> IdGen {
        IdGen { seed, drawn: 0 }
    }

    /// The next id as 32 lowercase hex digits.
    pub fn next_hex(&mut self) -> String {
        // A multiplicative step keeps consecutive ids of one seed far apart, so two seeds that
        // differ by a small amount do not produce overlapping sequences.
        const STEP: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835;
        let value = self
            .seed
            .wrapping_add(STEP.wrapping_mul(u128::from(self.drawn)));
        self.drawn += 1;
        format!("{value:032x}")
    }

    /// The next id as an execution id.
    pub fn next_execution_id(&mut self) -> ExecutionId {
        ExecutionId(self.next_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known FNV-1a 32-bit values, so placement matches every other implementation.
    #[test]
    fn fnv1a32_matches_reference_vectors() {
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn hashed_placement_is_fnv_modulo_count() {
        let id = InstanceId::new("foobar");
        assert_eq!(partition_of(&id, 12), PartitionId(0xbf9c_f968 % 12));
    }

    #[test]
    fn explicit_suffix_places_on_n_mod_count() {
        assert_eq!(
            partition_of(&InstanceId::new("account!7"), 12),
            PartitionId(7)
        );
        assert_eq!(
            partition_of(&InstanceId::new("account!13"), 12),
            PartitionId(1)
        );
        assert_eq!(
            partition_of(&InstanceId::new("@acct@x!3"), 4),
            PartitionId(3)
        );
    }

    #[test]
    fn malformed_suffix_falls_back_to_hash() {
        for id in ["a!", "a!x1", "a!-1", "a!1 "] {
            let id = InstanceId::new(id);
            assert_eq!(
                partition_of(&id, 12),
                PartitionId(fnv1a32(id.0.as_bytes()) % 12)
            );
        }
    }

    #[test]
    fn huge_explicit_suffix_does_not_overflow() {
        let id = InstanceId::new("x!18446744073709551615");
        assert_eq!(partition_of(&id, 10), PartitionId((u64::MAX % 10) as u32));
        let too_big = InstanceId::new("x!99999999999999999999999");
        let hashed = PartitionId(fnv1a32(too_big.0.as_bytes()) % 10);
        assert_eq!(partition_of(&too_big, 10), hashed);
    }
}

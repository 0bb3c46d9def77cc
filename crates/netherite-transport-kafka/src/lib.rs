//! A [`Transport`] over Kafka (or any broker that speaks its protocol).
//!
//! A task hub `H` with `P` partitions uses four topics, created on first connect:
//!
//! ```text
//!  H.input      P Kafka partitions   partition p's input queue is Kafka partition p
//!  H.aside      P Kafka partitions   pieces of input payloads too large for one record;
//!                                    the input holds a reference in their place
//!  H.responses  R Kafka partitions   client c's responses go to partition hash(c) mod R,
//!                                    keyed by c; a client's reader skips the other keys
//!  H.owners     P Kafka partitions   never written: its consumer group's assignment is
//!                                    the ownership proposal (Kafka partition p = ours p)
//! ```
//!
//! - **Positions are Kafka offsets.** A send returns the offsets the broker gave, and a
//!   subscription assigns its Kafka partition at exactly the position asked for: the engine
//!   stores positions in its checkpoints and resumes from them, never from offsets committed
//!   by a consumer group (this transport commits none).
//! - **Durable send.** The producer waits for every in-sync replica (`acks=all`) and is
//!   idempotent where the broker supports it (`KafkaOptions::idempotent`), so a retried batch
//!   is not appended twice and order within a partition holds. Sends are batched by the
//!   producer (`linger.ms`) and compressed (lz4 unless told otherwise). No Kafka
//!   transactions: exactly-once comes from the engine's outbox and dedup, which rule 5 of the
//!   transport contract already asks for.
//! - **Ownership** comes from a consumer group on `H.owners`: each node is a member, and the
//!   broker's assignment of the owners topic's partitions, reported by the rebalance
//!   callbacks, is what this node is proposed to host. The storage fence decides, not this.
//! - **Discard** is a no-op: the topics' own retention drops old records.
//!
//! Errors map to the contract's: a broker that cannot be reached, a timed-out delivery or a
//! failed fetch is [`Error::Io`] (retry), a record over the broker's size limit is
//! [`Error::LimitExceeded`] naming `message_bytes_max`, and a bad partition or a position
//! below the retention is [`Error::InvalidArgument`].
//!
//! The transport needs librdkafka, a C library built from source with the crate: it is behind
//! this crate's feature `kafka` (off by default), so that builds which do not use Kafka skip
//! that compile. Without the feature the crate is empty.
//!
//! [`Transport`]: netherite_core::transport::Transport
//! [`Error::Io`]: netherite_core::Error::Io
//! [`Error::LimitExceeded`]: netherite_core::Error::LimitExceeded
//! [`Error::InvalidArgument`]: netherite_core::Error::InvalidArgument

#[cfg(feature = "kafka")]
mod kafka;

#[cfg(feature = "kafka")]
pub use kafka::{KafkaOptions, KafkaTransport};

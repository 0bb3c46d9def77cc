//! FASTER-style storage for a partition, over any `LogDevice` of `netherite-core`.
//!
//! This crate will hold two pieces: the partition's commit log (append with length, type and
//! checksum, group commit with one device flush per batch, scan, truncate, torn-tail detection)
//! and the hybrid-log key-value store (hash index, mutable / read-only / on-device regions,
//! checkpoints with the manifest written last, compaction). Neither exists yet: the crate is an
//! empty library so that the workspace already has its final shape.

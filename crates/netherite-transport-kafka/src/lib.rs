//! A `Transport` over Kafka: one topic with one Kafka partition per netherite partition.
//!
//! It will hold positions as Kafka offsets (resumed from checkpoints, never from the consumer
//! group's committed offsets) and ownership proposals from consumer-group rebalances. Nothing is
//! implemented yet: the crate is an empty library so that the workspace already has its final
//! shape.

//! A `Transport` over Azure Event Hubs: one Event Hubs partition per netherite partition.
//!
//! It will hold sequence-number positions, batched sends, blob-stored large batches and
//! ownership records in blob storage. Nothing is implemented yet: the crate is an empty library
//! so that the workspace already has its final shape.

//! A `LogDevice` over segment files in a local directory (a local disk or a persistent volume).
//!
//! It will hold aligned writes, `fdatasync` as the flush barrier and an exclusive file lock as
//! the ownership fence. Nothing is implemented yet: the crate is an empty library so that the
//! workspace already has its final shape.

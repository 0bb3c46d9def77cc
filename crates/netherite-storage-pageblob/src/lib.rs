//! A `LogDevice` over Azure page blobs, fenced by a blob lease.
//!
//! It will hold 512-byte aligned page writes, ranged reads and ETag-conditional manifests.
//! Nothing is implemented yet: the crate is an empty library so that the workspace already has
//! its final shape.

//! The `Transport` contract (being written).

//! The hybrid-log key-value store (being written).

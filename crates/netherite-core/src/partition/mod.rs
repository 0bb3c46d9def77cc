//! The partition state machine (being written).

pub mod index;

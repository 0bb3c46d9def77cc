//! The partition state machine (being written).

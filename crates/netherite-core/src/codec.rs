//! The record format of logged events (being written).

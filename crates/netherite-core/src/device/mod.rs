//! The `LogDevice` contract (being written).

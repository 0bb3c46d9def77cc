//! The generated protocol types and gRPC stubs.
//!
//! The `.proto` has no `package` (the SDKs call `/TaskHubSidecarService/Method`), so the
//! generator writes everything into `_.rs`, included here. Messages are global names, as in the
//! protocol: `pb::HistoryEvent`, `pb::OrchestratorAction`; nested oneofs and map entries live in
//! snake-case modules (`pb::history_event::EventType`). The service lives in
//! `pb::task_hub_sidecar_service_server` and `pb::task_hub_sidecar_service_client`.

#![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]

include!(concat!(env!("OUT_DIR"), "/_.rs"));

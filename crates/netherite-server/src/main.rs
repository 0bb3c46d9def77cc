//! The `netherite` binary: the Durable Task gRPC sidecar (`netherite serve`) and tools to start,
//! inspect, query and purge instances.
//!
//! None of its commands exist yet. Until they do, the binary says so and exits with status 2
//! instead of pretending to serve.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("netherite: no command is implemented yet (the gRPC sidecar is still being built)");
    ExitCode::from(2)
}

//! Generates the protocol's Rust types and the gRPC stubs from `proto/durabletask.proto`.
//!
//! `protox` parses the file in pure Rust (well-known `google.protobuf` imports included), so
//! building needs no system `protoc`. Its descriptor set, with source info so that the proto's
//! comments become doc comments, goes to `tonic-prost-build`. The file has no `package`, so the
//! output is `$OUT_DIR/_.rs`, which `src/pb.rs` includes.
//!
//! Every protobuf map is generated as a `BTreeMap`: the core model keeps tags in one, and a
//! stable order makes encodings repeatable.

use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    let proto = "proto/durabletask.proto";
    println!("cargo:rerun-if-changed={proto}");

    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .btree_map(".")
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}

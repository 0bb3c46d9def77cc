//! What the Kafka stories share: the broker to test against and fresh hub names.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use netherite_transport_kafka::KafkaOptions;

/// The broker to test against, or `None` (outside CI) to skip.
pub(crate) fn broker() -> Option<String> {
    let what = "the Kafka conformance suite against a broker";
    netherite_core::conformance::outside_service("NETHERITE_TEST_KAFKA", what)
}

/// Hub names unique to this process and run.
pub(crate) fn fresh_hub() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("conformance-{run}-{}-{n}", std::process::id())
}

/// Options for a fresh hub of `partitions` partitions on `broker`.
pub(crate) fn options(broker: &str, partitions: u32) -> KafkaOptions {
    let mut options = KafkaOptions::new(broker, fresh_hub(), partitions);
    options.response_partitions = 2;
    let idempotent = std::env::var("NETHERITE_TEST_KAFKA_IDEMPOTENT");
    options.idempotent = idempotent.map_or(true, |v| v != "0");
    options
}

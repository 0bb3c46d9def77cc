//! How a [`KafkaTransport`](super::KafkaTransport) connects and shapes its topics.

use std::time::Duration;

use netherite_core::Error;
use rdkafka::ClientConfig;

/// The settings of a Kafka transport. `brokers`, `hub` and `partition_count` must be set; the
/// rest have defaults that suit a local broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaOptions {
    /// `host:port[,host:port...]` of the bootstrap brokers.
    pub brokers: String,
    /// The task hub's name: the prefix of its topics and consumer group.
    pub hub: String,
    /// The task hub's partition count: the input topic's partition count.
    pub partition_count: u32,
    /// Partitions of the responses topic (clients are spread over them by id). Default 12.
    pub response_partitions: u32,
    /// The replication factor of topics this transport creates. Default 1.
    pub replication: i32,
    /// The largest payload one record may carry; a larger one is refused with
    /// `LimitExceeded` naming `message_bytes_max`. Keep it at or below the broker's
    /// `message.max.bytes` (1 MiB by default). Default 1,000,000 bytes.
    pub message_bytes_max: usize,
    /// Whether the producer is idempotent (no duplicates or reordering when it retries);
    /// turn it off for brokers that do not support producer ids. Default on.
    pub idempotent: bool,
    /// How long the producer lingers to batch records. Default 1 ms.
    pub linger: Duration,
    /// The producer's `compression.type`: `lz4` by default; `none` for brokers that do not
    /// take compressed batches (Azure Event Hubs).
    pub compression: String,
    /// How long a send may take before it fails with `Io`. Default 30 s.
    pub send_timeout: Duration,
    /// How long connecting waits for a broker to answer. Default 10 s.
    pub connect_timeout: Duration,
    /// How long the broker waits for a silent node before it reassigns its partitions
    /// (the consumer group's session timeout). Default 6 s.
    pub session_timeout: Duration,
    /// The consumer group through which the nodes of the hub share its partitions; `None`
    /// (the default) is `H.nodes`. Every node of a hub must name the same group. Set it where
    /// the broker's access rules prescribe group names, or to start over in a group with no
    /// memory of earlier members.
    pub node_group: Option<String>,
    /// Extra librdkafka settings for every client (for example `security.protocol`,
    /// `sasl.mechanism`, `sasl.username`, `sasl.password` for a managed service).
    pub extra: Vec<(String, String)>,
}

impl KafkaOptions {
    /// Options for task hub `hub` with `partition_count` partitions on `brokers`.
    pub fn new(brokers: impl Into<String>, hub: impl Into<String>, partition_count: u32) -> Self {
        KafkaOptions {
            brokers: brokers.into(),
            hub: hub.into(),
            partition_count,
            response_partitions: 12,
            replication: 1,
            message_bytes_max: 1_000_000,
            idempotent: true,
            linger: Duration::from_millis(1),
            compression: "lz4".into(),
            send_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            session_timeout: Duration::from_secs(6),
            node_group: None,
            extra: Vec::new(),
        }
    }

    /// Refuses options no broker could serve.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let invalid = |reason: &str| {
            Err(Error::InvalidArgument {
                operation: "kafka connect",
                reason: reason.to_string(),
            })
        };
        if self.brokers.trim().is_empty() {
            return invalid("no brokers given");
        }
        let name_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if self.hub.is_empty() || self.hub.len() > 200 || !self.hub.chars().all(name_ok) {
            return invalid("the hub name must be 1 to 200 of [A-Za-z0-9._-]");
        }
        let group_ok = |g: &String| !g.is_empty() && g.len() <= 200 && g.chars().all(name_ok);
        if self
            .node_group
            .as_ref()
            .is_some_and(|group| !group_ok(group))
        {
            return invalid("the node group's name must be 1 to 200 of [A-Za-z0-9._-]");
        }
        if self.partition_count == 0 || self.response_partitions == 0 {
            return invalid("partition counts must be at least 1");
        }
        if i32::try_from(self.partition_count.max(self.response_partitions)).is_err() {
            return invalid("partition counts must fit Kafka's 32-bit partition numbers");
        }
        Ok(())
    }

    /// The consumer group of the hub's nodes.
    pub(crate) fn node_group(&self) -> String {
        let default = || format!("{}.nodes", self.hub);
        self.node_group.clone().unwrap_or_else(default)
    }

    /// The settings every client of this transport shares.
    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set(
                "socket.timeout.ms",
                self.connect_timeout.as_millis().to_string(),
            )
            .set("log_level", "4");
        for (key, value) in &self.extra {
            config.set(key, value);
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Options no broker could serve are refused before anything connects, each with a reason;
    /// the node group defaults to `H.nodes`.
    #[test]
    fn impossible_options_are_refused() {
        let good = KafkaOptions::new("127.0.0.1:9092", "hub", 4);
        assert!(good.check().is_ok());
        assert_eq!(good.node_group(), "hub.nodes");

        let bad = [
            KafkaOptions::new(" ", "hub", 4),
            KafkaOptions::new("127.0.0.1:9092", "a hub", 4),
            KafkaOptions::new("127.0.0.1:9092", "hub", 0),
            KafkaOptions {
                node_group: Some(String::new()),
                ..good.clone()
            },
            KafkaOptions {
                node_group: Some("nodes/1".into()),
                ..good.clone()
            },
        ];
        for options in bad {
            let error = options.check().expect_err("impossible options");
            assert!(
                matches!(error, Error::InvalidArgument { .. }),
                "{options:?}: {error}"
            );
        }
    }
}

//! How an [`EventHubsTransport`](super::EventHubsTransport) connects, and its limits.

use std::time::Duration;

use netherite_azure::StorageAccount;
use netherite_core::Error;

use crate::EventHubsConnection;
use crate::ownership::OwnershipTimings;

/// The settings of an Event Hubs transport. The connection strings, the container and the
/// partition count must be given; the rest have defaults.
#[derive(Clone, Debug)]
pub struct EventHubsOptions {
    /// The Event Hubs namespace and a policy of it with Send and Listen rights.
    pub connection: EventHubsConnection,
    /// The storage account for blob batches and ownership records.
    pub storage: StorageAccount,
    /// The blob container (created if missing); one per task hub.
    pub container: String,
    /// The event hub of the partitions' inputs; it must have `partition_count` partitions.
    /// Default `partitions`.
    pub partitions_hub: String,
    /// The event hub of the clients' responses, with any number of partitions. Default
    /// `clients`.
    pub responses_hub: String,
    /// The task hub's partition count.
    pub partition_count: u32,
    /// The consumer group every reader uses. Default `$Default`.
    pub consumer_group: String,
    /// Payloads larger than this go aside into a blob. It must stay below the event hub's
    /// message size limit (1 MB on the Standard tier, 256 KB on Basic) less a few hundred bytes
    /// of headers. Default 250,000 bytes, which fits every tier.
    pub inline_bytes_max: usize,
    /// The most bytes one send may put aside; more is a `LimitExceeded` naming
    /// `aside_bytes_max`. Default 256 MiB.
    pub aside_bytes_max: usize,
    /// How old a blob batch must be before the sweep deletes it whatever its events. It must
    /// exceed the event hub's message retention, and the longest time a partition may lag
    /// behind its input. Default 8 days (the Standard tier keeps events up to 7).
    pub aside_retention: Duration,
    /// How often each partition's blob batches are swept. Default 1 hour.
    pub aside_sweep_interval: Duration,
    /// The ownership rounds' interval and the records' expiry. Default 10 s and 30 s.
    pub ownership: OwnershipTimings,
    /// How long one send may take, read-back included, before it fails with `Io`. Default 30 s.
    pub send_timeout: Duration,
    /// How long connecting may take before it fails with `Io`. Default 30 s.
    pub connect_timeout: Duration,
    /// How long the Event Hubs tokens this transport signs live (the SDK renews them before
    /// they expire). Default 1 hour.
    pub token_lifetime: Duration,
    /// How many events a reader asks the service for ahead of use. Default 300.
    pub prefetch: u32,
}

impl EventHubsOptions {
    /// Options for a task hub of `partition_count` partitions in `container`.
    pub fn new(
        connection: EventHubsConnection,
        storage: StorageAccount,
        container: impl Into<String>,
        partition_count: u32,
    ) -> EventHubsOptions {
        EventHubsOptions {
            connection,
            storage,
            container: container.into(),
            partitions_hub: "partitions".into(),
            responses_hub: "clients".into(),
            partition_count,
            consumer_group: "$Default".into(),
            inline_bytes_max: 250_000,
            aside_bytes_max: 256 << 20,
            aside_retention: Duration::from_secs(8 * 24 * 3600),
            aside_sweep_interval: Duration::from_secs(3600),
            ownership: OwnershipTimings::default(),
            send_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            token_lifetime: Duration::from_secs(3600),
            prefetch: 300,
        }
    }

    /// Refuses options no namespace could serve.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let invalid = |reason: String| {
            Err(Error::InvalidArgument {
                operation: "eventhubs connect",
                reason,
            })
        };
        if self.partition_count == 0 {
            return invalid("the partition count must be at least 1".into());
        }
        for hub in [&self.partitions_hub, &self.responses_hub] {
            if !hub_name_ok(hub) {
                return invalid(format!("{hub:?} is not an event hub name"));
            }
        }
        if self
            .partitions_hub
            .eq_ignore_ascii_case(&self.responses_hub)
        {
            return invalid("inputs and responses need two different event hubs".into());
        }
        if self.inline_bytes_max == 0 || self.token_lifetime < Duration::from_secs(60) {
            return invalid("inline_bytes_max must be positive and tokens live a minute".into());
        }
        self.ownership.check()
    }
}

/// Event hub names: 1 to 256 letters, digits, periods, hyphens and underscores, starting and
/// ending with a letter or digit.
fn hub_name_ok(name: &str) -> bool {
    let inner = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    let edges = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    (1..=256).contains(&name.len()) && edges && name.chars().all(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> EventHubsOptions {
        let connection = EventHubsConnection::parse(
            "Endpoint=sb://demo.servicebus.windows.net/;SharedAccessKeyName=root;\
             SharedAccessKey=a2V5",
        )
        .unwrap();
        let storage = StorageAccount::parse("UseDevelopmentStorage=true").unwrap();
        EventHubsOptions::new(connection, storage, "hub", 4)
    }

    /// Options no namespace could serve are refused before anything connects, each with a
    /// reason.
    #[test]
    fn impossible_options_are_refused() {
        assert!(options().check().is_ok());
        let bad = [
            EventHubsOptions {
                partition_count: 0,
                ..options()
            },
            EventHubsOptions {
                responses_hub: "Partitions".into(),
                ..options()
            },
            EventHubsOptions {
                partitions_hub: "-in".into(),
                ..options()
            },
            EventHubsOptions {
                inline_bytes_max: 0,
                ..options()
            },
            EventHubsOptions {
                ownership: OwnershipTimings {
                    interval: Duration::from_secs(30),
                    expiry: Duration::from_secs(30),
                },
                ..options()
            },
        ];
        for options in bad {
            let error = options.check().expect_err("impossible options");
            assert!(matches!(error, Error::InvalidArgument { .. }), "{error}");
        }
    }
}

//! What the Event Hubs transport's live stories share: the namespace to test against.

#![allow(dead_code)]

use netherite_azure::StorageAccount;
use netherite_transport_eventhubs::{EventHubsConnection, EventHubsOptions};

/// The container the stories use.
pub(crate) const CONTAINER: &str = "netherite-eventhubs-tests";

/// Options for the live namespace named by `NETHERITE_EVENTHUBS_CONNECTION`, with the storage
/// account of `NETHERITE_EVENTHUBS_STORAGE`, or `None` to skip. Event Hubs cannot run on the
/// machines this project tests on (its emulator is a container), so a missing namespace is a
/// skip in CI too.
pub(crate) fn eventhubs(partitions: u32) -> Option<EventHubsOptions> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(connection), Some(storage)) = (
        var("NETHERITE_EVENTHUBS_CONNECTION"),
        var("NETHERITE_EVENTHUBS_STORAGE"),
    ) else {
        eprintln!(
            "NETHERITE_EVENTHUBS_CONNECTION and NETHERITE_EVENTHUBS_STORAGE are not both set: \
             the live Event Hubs stories are skipped"
        );
        return None;
    };
    let connection = EventHubsConnection::parse(&connection).expect("the connection string");
    let storage = StorageAccount::parse(&storage).expect("the storage connection string");
    let mut options = EventHubsOptions::new(connection, storage, CONTAINER, partitions);
    if let Some(hub) = var("NETHERITE_EVENTHUBS_PARTITIONS_HUB") {
        options.partitions_hub = hub;
    }
    if let Some(hub) = var("NETHERITE_EVENTHUBS_RESPONSES_HUB") {
        options.responses_hub = hub;
    }
    Some(options)
}

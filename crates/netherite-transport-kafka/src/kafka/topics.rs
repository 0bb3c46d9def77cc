//! The task hub's topics: their names, and creating or checking them on connect.

use netherite_core::{ClientId, Error};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use super::io;
use super::options::KafkaOptions;

/// How long the responses topic keeps records: a client reads its answers within moments, and
/// a new subscription scans what the topic still holds for its key.
const RESPONSE_RETENTION_MS: &str = "3600000";

/// The names of one task hub's topics and the responses topic's width.
#[derive(Clone, Debug)]
pub(crate) struct Topics {
    pub(crate) input: String,
    pub(crate) aside: String,
    pub(crate) responses: String,
    pub(crate) owners: String,
    response_partitions: u32,
}

impl Topics {
    /// Creates the hub's topics where missing and checks their partition counts.
    pub(crate) async fn ensure(options: &KafkaOptions) -> Result<Topics, Error> {
        let topics = Topics {
            input: format!("{}.input", options.hub),
            aside: format!("{}.aside", options.hub),
            responses: format!("{}.responses", options.hub),
            owners: format!("{}.owners", options.hub),
            response_partitions: options.response_partitions,
        };
        let admin: AdminClient<DefaultClientContext> = options
            .client_config()
            .create()
            .map_err(|e| io("creating the admin client", &e))?;
        topics.create(&admin, options).await?;
        let expected = [
            (&topics.input, options.partition_count),
            (&topics.aside, options.partition_count),
            (&topics.responses, options.response_partitions),
            (&topics.owners, options.partition_count),
        ];
        for (name, count) in expected {
            check_partitions(name, count, options).await?;
        }
        Ok(topics)
    }

    async fn create(
        &self,
        admin: &AdminClient<DefaultClientContext>,
        options: &KafkaOptions,
    ) -> Result<(), Error> {
        let replication = || TopicReplication::Fixed(options.replication);
        let width = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        let new = [
            NewTopic::new(&self.input, width(options.partition_count), replication()),
            NewTopic::new(&self.aside, width(options.partition_count), replication()),
            NewTopic::new(
                &self.responses,
                width(options.response_partitions),
                replication(),
            )
            .set("retention.ms", RESPONSE_RETENTION_MS),
            NewTopic::new(&self.owners, width(options.partition_count), replication()),
        ];
        let admin_options = AdminOptions::new()
            .request_timeout(Some(options.connect_timeout))
            .operation_timeout(Some(options.connect_timeout));
        let results = admin
            .create_topics(new.iter(), &admin_options)
            .await
            .map_err(|e| io("creating the topics", &e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(Error::Io {
                        operation: "kafka",
                        reason: format!("creating topic {name}: {code}"),
                    });
                }
            }
        }
        Ok(())
    }

    /// The responses partition of `client`: its id folded onto the topic's width.
    pub(crate) fn response_partition(&self, client: ClientId) -> i32 {
        let folded = (client.0 ^ (client.0 >> 64)) as u64;
        let index = folded % u64::from(self.response_partitions);
        i32::try_from(index).unwrap_or(0)
    }
}

/// Fails unless topic `name` has exactly `count` partitions.
async fn check_partitions(name: &str, count: u32, options: &KafkaOptions) -> Result<(), Error> {
    // The metadata call blocks its thread until the broker answers: off the async threads.
    let config = options.client_config();
    let (topic, timeout) = (name.to_string(), options.connect_timeout);
    let fetched = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config.create()?;
        consumer.fetch_metadata(Some(&topic), timeout)
    })
    .await
    .map_err(|e| Error::Io {
        operation: "kafka",
        reason: format!("reading the metadata of topic {name}: {e}"),
    })?;
    let metadata = fetched.map_err(|e| io(&format!("reading the metadata of topic {name}"), &e))?;
    let topic = metadata.topics().iter().find(|t| t.name() == name);
    let found = match topic {
        Some(t) if t.error().is_none() => t.partitions().len(),
        // A topic just created may not be known to every broker yet: try again later.
        _ => {
            return Err(Error::Io {
                operation: "kafka",
                reason: format!("topic {name} is not ready on the broker yet"),
            });
        }
    };
    if found != count as usize {
        return Err(Error::InvalidArgument {
            operation: "kafka connect",
            reason: format!(
                "topic {name} has {found} partitions, the task hub needs {count}: it belongs to \
                 a hub made with another partition count"
            ),
        });
    }
    Ok(())
}

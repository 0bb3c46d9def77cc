//! [`StartOptions`]: what starting an orchestration takes, built step by step.

use netherite_core::InstanceId;
use netherite_core::Timestamp;
use netherite_core::model::{OrchestrationStatus, Payload, Tags};
use serde::Serialize;

use crate::Error;

/// How to start an orchestration instance.
///
/// ```
/// use netherite::client::StartOptions;
/// use netherite_core::model::OrchestrationStatus;
///
/// let options = StartOptions::new("ProcessOrder")
///     .with_instance_id("order-42")
///     .with_input(&serde_json::json!({ "items": 3 }))?
///     .with_tag("customer", "acme")
///     .with_reuse(&[OrchestrationStatus::Completed, OrchestrationStatus::Failed]);
/// assert_eq!(options.input.as_deref(), Some(r#"{"items":3}"#));
/// # Ok::<(), netherite::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StartOptions {
    /// The orchestration's registered name.
    pub name: String,
    /// The instance id; a fresh random id when `None`.
    pub instance_id: Option<InstanceId>,
    /// The input, as JSON text.
    pub input: Payload,
    /// The orchestration's version.
    pub version: Option<String>,
    /// Tags copied to the instance.
    pub tags: Tags,
    /// When to start; the instance stays `Pending` until then.
    pub scheduled_start: Option<Timestamp>,
    /// The terminal statuses an existing instance with the same id may have for it to be
    /// replaced; empty (the default) refuses any existing instance. A running instance is
    /// never replaced.
    pub reuse: Vec<OrchestrationStatus>,
}

impl StartOptions {
    /// Options to start orchestration `name` with no input under a fresh id.
    pub fn new(name: impl Into<String>) -> StartOptions {
        StartOptions {
            name: name.into(),
            ..StartOptions::default()
        }
    }

    /// These options with instance id `id`.
    pub fn with_instance_id(mut self, id: impl Into<String>) -> StartOptions {
        self.instance_id = Some(InstanceId::new(id));
        self
    }

    /// These options with `input`, serialized as JSON.
    pub fn with_input(mut self, input: &impl Serialize) -> Result<StartOptions, Error> {
        let json = serde_json::to_string(input).map_err(|e| Error::Serialize {
            what: format!("the input of orchestration '{}'", self.name),
            reason: e.to_string(),
        })?;
        self.input = Some(json);
        Ok(self)
    }

    /// These options with version `version`.
    pub fn with_version(mut self, version: impl Into<String>) -> StartOptions {
        self.version = Some(version.into());
        self
    }

    /// These options with tag `key` set to `value`.
    pub fn with_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> StartOptions {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// These options starting the instance at `at` rather than now.
    pub fn with_scheduled_start(mut self, at: Timestamp) -> StartOptions {
        self.scheduled_start = Some(at);
        self
    }

    /// These options replacing an existing instance in one of `statuses`.
    pub fn with_reuse(mut self, statuses: &[OrchestrationStatus]) -> StartOptions {
        self.reuse = statuses.to_vec();
        self
    }
}

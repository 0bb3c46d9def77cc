//! The registry: orchestrations and activities by name, as type-erased functions from a JSON
//! payload to a JSON payload.
//!
//! Users register ordinary async functions with serde-typed input and output. Registration
//! wraps each in a closure that decodes the input, runs the function and encodes its result or
//! turns its error into [`FailureDetails`], so the executor and the activity runner only ever
//! see payloads. The registry is `Send + Sync` and shared by every worker thread; orchestration
//! futures need not be `Send` (they run on the executor's thread), activity futures must be
//! (the runner may move them between threads).

use std::collections::BTreeMap;
use std::fmt::{self, Display};
use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::{BoxFuture, LocalBoxFuture};
use netherite_core::model::{FailureDetails, Payload};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::payload::{decode, encode, failure_of, serialization_failure};
use super::{ActivityContext, OrchestrationContext};
use crate::Error;

/// A running orchestration: resolves to its JSON output or its failure.
pub(crate) type OrchestrationFuture = LocalBoxFuture<'static, Result<Payload, FailureDetails>>;

/// An orchestration, type-erased: an `Err` means the input did not deserialize.
pub(crate) type OrchestrationFn = Arc<
    dyn Fn(OrchestrationContext, Payload) -> Result<OrchestrationFuture, FailureDetails>
        + Send
        + Sync,
>;

/// A running activity: resolves to its JSON result or its failure.
pub(crate) type ActivityFuture = BoxFuture<'static, Result<Payload, FailureDetails>>;

/// An activity, type-erased: an `Err` means the input did not deserialize.
pub(crate) type ActivityFn =
    Arc<dyn Fn(ActivityContext, Payload) -> Result<ActivityFuture, FailureDetails> + Send + Sync>;

/// Orchestrations and activities by name.
///
/// # Example
///
/// ```
/// use netherite::sdk::{ActivityContext, ActivityError, OrchestrationContext, Registry, TaskError};
///
/// let mut registry = Registry::new();
/// registry
///     .orchestration("Hello", |ctx: OrchestrationContext, name: String| async move {
///         let greeting: String = ctx.call_activity("SayHello", &name).await?;
///         Ok::<_, TaskError>(greeting)
///     })
///     .expect("a fresh name")
///     .activity("SayHello", |_ctx: ActivityContext, name: String| async move {
///         Ok::<_, ActivityError>(format!("Hello {name}!"))
///     })
///     .expect("a fresh name");
/// assert!(registry.has_orchestration("Hello"));
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    orchestrations: BTreeMap<String, OrchestrationFn>,
    activities: BTreeMap<String, ActivityFn>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers orchestration `name`: an async function of its context and its input that
    /// returns its output or an error (whose `Display` text becomes the failure message).
    ///
    /// The function must be deterministic: it may only learn about the world through the
    /// context (see [`OrchestrationContext`]). Names are case-sensitive; registering a name
    /// twice is an error.
    pub fn orchestration<F, Fut, I, O, E>(
        &mut self,
        name: impl Into<String>,
        function: F,
    ) -> Result<&mut Self, Error>
    where
        F: Fn(OrchestrationContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + 'static,
        I: DeserializeOwned,
        O: Serialize,
        E: Display + 'static,
    {
        let name = name.into();
        let who = format!("orchestration '{name}'");
        let erased: OrchestrationFn = Arc::new(move |ctx, input| {
            let input = decode::<I>(&input, &format!("the input of {who}"))?;
            let running = function(ctx, input);
            let who = who.clone();
            Ok(async move { settle(running.await, &who) }.boxed_local())
        });
        insert(&mut self.orchestrations, "orchestration", name, erased)?;
        Ok(self)
    }

    /// Registers activity `name`: an async function of its context and its input that returns
    /// its result or an error (whose `Display` text becomes the failure message).
    ///
    /// Names are case-sensitive; registering a name twice is an error.
    pub fn activity<F, Fut, I, O, E>(
        &mut self,
        name: impl Into<String>,
        function: F,
    ) -> Result<&mut Self, Error>
    where
        F: Fn(ActivityContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        I: DeserializeOwned,
        O: Serialize,
        E: Display + 'static,
    {
        let name = name.into();
        let who = format!("activity '{name}'");
        let erased: ActivityFn = Arc::new(move |ctx, input| {
            let input = decode::<I>(&input, &format!("the input of {who}"))?;
            let running = function(ctx, input);
            let who = who.clone();
            Ok(async move { settle(running.await, &who) }.boxed())
        });
        insert(&mut self.activities, "activity", name, erased)?;
        Ok(self)
    }

    /// Whether an orchestration of this name is registered.
    pub fn has_orchestration(&self, name: &str) -> bool {
        self.orchestrations.contains_key(name)
    }

    /// Whether an activity of this name is registered.
    pub fn has_activity(&self, name: &str) -> bool {
        self.activities.contains_key(name)
    }

    pub(crate) fn orchestration_fn(&self, name: &str) -> Option<OrchestrationFn> {
        self.orchestrations.get(name).cloned()
    }

    pub(crate) fn activity_fn(&self, name: &str) -> Option<ActivityFn> {
        self.activities.get(name).cloned()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("orchestrations", &self.orchestrations.keys())
            .field("activities", &self.activities.keys())
            .finish()
    }
}

fn insert<V>(
    map: &mut BTreeMap<String, V>,
    kind: &'static str,
    name: String,
    value: V,
) -> Result<(), Error> {
    if map.contains_key(&name) {
        return Err(Error::AlreadyRegistered { kind, name });
    }
    map.insert(name, value);
    Ok(())
}

/// Turns what a user function returned into a payload or a failure.
fn settle<O: Serialize, E: Display + 'static>(
    returned: Result<O, E>,
    who: &str,
) -> Result<Payload, FailureDetails> {
    let output = returned.map_err(|error| failure_of(&error))?;
    encode(&output, &format!("the output of {who}")).map_err(|error| serialization_failure(&error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdk::ActivityError;

    fn add_one(registry: &mut Registry, name: &str) -> Result<(), Error> {
        registry.activity(name, |_ctx: ActivityContext, n: i32| async move {
            Ok::<_, ActivityError>(n + 1)
        })?;
        Ok(())
    }

    /// A name can be registered once per kind; the second attempt names the kind and name.
    #[test]
    fn registering_a_name_twice_is_an_error() {
        let mut registry = Registry::new();
        add_one(&mut registry, "AddOne").unwrap();
        let error = add_one(&mut registry, "AddOne").unwrap_err();
        assert_eq!(error.to_string(), "activity 'AddOne' is already registered");
        assert!(registry.has_activity("AddOne"));
        assert!(!registry.has_activity("addone"), "names are case-sensitive");
        assert!(!registry.has_orchestration("AddOne"));
    }

    /// The registry can be shared between worker threads.
    #[test]
    fn registry_is_send_and_sync() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Registry>();
    }
}

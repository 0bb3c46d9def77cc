//! The client: start, inspect, signal, wait for and clean up orchestration instances.
//!
//! A [`Client`] changes an instance by sending a request to the instance's partition, where it
//! is logged and deduplicated (by the client's id and a sequence number); the answer comes back
//! on the client's own response queue once the partition made the request durable. When this
//! process hosts the partition, the request is handed to the host directly and the commit log
//! is its one durable record (one `fdatasync` instead of two); otherwise it goes through the
//! transport into the partition's input queue. Reads (an instance's state, its history,
//! queries) are answered from the hosting partition's live state, and a wait for an instance
//! to start or finish is a long poll kept by the host: neither goes through a log.
//!
//! Every request a partition turns down comes back as a typed [`Error`]: `NotFound`,
//! `AlreadyExists`, `FailedPrecondition`, `Timeout`, `PartitionLimit`, `InvalidRequest`. A
//! payload over `payload_bytes_max` is refused before anything is sent.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use netherite::client::StartOptions;
//! # async fn demo(engine: netherite::Engine) -> Result<(), netherite::Error> {
//! let client = engine.client();
//! let options = StartOptions::new("Hello").with_input(&"Tokyo")?;
//! let id = client.start(options).await?;
//! let done = client.wait_for_completion(&id, Duration::from_secs(30)).await?;
//! let greeting: String = netherite::client::output(&done)?;
//! # Ok(()) }
//! ```

mod options;
mod pipeline;
mod query;

use std::sync::Arc;
use std::time::Duration;

use netherite_core::model::{HistoryEvent, OrchestrationStatus, Payload};
use netherite_core::partition::{
    ClientRequest, ClientResponse, CreateInstance, InstanceView, ReadEvent, ReadResult, Rejection,
    WaitFor, WaitUntil,
};
use netherite_core::transport::Transport;
use netherite_core::{ClientId, InstanceId, PartitionId, partition_of};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use self::options::StartOptions;
use self::pipeline::Pipelines;
pub use self::query::QueryPage;
use crate::Error;
use crate::engine::HostMap;
use crate::host::{random_u128, system_now};
use crate::settings::Settings;

/// How a client behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// The largest input, output or event payload accepted (`payload_bytes_max`).
    pub payload_bytes_max: u64,
    /// How long a request other than a wait may take before it fails with `Closed`.
    pub request_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            payload_bytes_max: 1 << 20,
            request_timeout: Duration::from_secs(60),
        }
    }
}

impl ClientOptions {
    /// The client options `settings` ask for.
    pub fn from_settings(settings: &Settings) -> ClientOptions {
        ClientOptions {
            payload_bytes_max: settings.payload_bytes_max,
            ..ClientOptions::default()
        }
    }
}

/// A handle for managing orchestration instances; cheap to clone, all clones are one client.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    id: ClientId,
    partition_count: u32,
    options: ClientOptions,
    pipelines: Pipelines,
    hosts: Arc<HostMap>,
}

impl Client {
    /// A client over `transport` that reads from the partitions in `hosts`.
    pub(crate) async fn connect(
        transport: Arc<dyn Transport>,
        hosts: Arc<HostMap>,
        options: ClientOptions,
    ) -> Result<Client, Error> {
        let id = ClientId(random_u128());
        let partition_count = transport.partition_count();
        let pipelines = Pipelines::start(id, transport, hosts.clone()).await?;
        let inner = Inner {
            id,
            partition_count,
            options,
            pipelines,
            hosts,
        };
        Ok(Client {
            inner: Arc::new(inner),
        })
    }

    /// This client's id, as partitions see it.
    pub fn id(&self) -> ClientId {
        self.inner.id
    }

    /// Starts an orchestration instance; returns its id.
    ///
    /// Fails with `AlreadyExists` if the id is taken by an instance whose status is not in
    /// `options.reuse`, with `PayloadTooLarge` if the input is over the limit, and with
    /// `InvalidRequest` for an empty name or an id that is not an orchestration's (empty, or
    /// an entity's `@name@key`).
    pub async fn start(&self, options: StartOptions) -> Result<InstanceId, Error> {
        if options.name.is_empty() {
            return Err(Error::InvalidRequest {
                reason: "an orchestration name must not be empty".into(),
            });
        }
        let what = || format!("the input of orchestration '{}'", options.name);
        self.check_payload(&options.input, what)?;
        let instance = options.instance_id.clone().unwrap_or_else(new_instance_id);
        let create = CreateInstance {
            instance: instance.clone(),
            name: options.name,
            version: options.version,
            input: options.input,
            tags: options.tags,
            scheduled_start: options.scheduled_start,
            execution: None,
            replaceable: options.reuse,
            parent_trace_context: None,
        };
        match self.call(&instance, ClientRequest::Create(create)).await? {
            ClientResponse::Created { instance, .. } => Ok(instance),
            other => Err(unexpected("Create", &other)),
        }
    }

    /// The instance as it is now, with its input, output and failure if `payloads`; `None`
    /// when there is no such instance.
    pub async fn get_state(
        &self,
        instance: &InstanceId,
        payloads: bool,
    ) -> Result<Option<InstanceView>, Error> {
        let read = ReadEvent::GetInstance {
            instance: instance.clone(),
            payloads,
        };
        match self.read(self.partition_of(instance), read).await? {
            ReadResult::Instance(view) => Ok(view.map(|v| *v)),
            other => Err(unexpected_read("GetInstance", &other)),
        }
    }

    /// Waits until the instance has started (left `Pending`), for at most `timeout`.
    pub async fn wait_for_start(
        &self,
        instance: &InstanceId,
        timeout: Duration,
    ) -> Result<InstanceView, Error> {
        self.wait(instance, WaitUntil::Start, timeout).await
    }

    /// Waits until the instance reached a terminal status, for at most `timeout`; the answer
    /// holds its output or failure.
    pub async fn wait_for_completion(
        &self,
        instance: &InstanceId,
        timeout: Duration,
    ) -> Result<InstanceView, Error> {
        self.wait(instance, WaitUntil::Completion, timeout).await
    }

    /// Raises event `name` with `data` on the instance.
    pub async fn raise_event(
        &self,
        instance: &InstanceId,
        name: &str,
        data: &impl Serialize,
    ) -> Result<(), Error> {
        let input = self.payload(data, || format!("the data of event '{name}'"))?;
        let request = ClientRequest::RaiseEvent {
            instance: instance.clone(),
            name: name.to_string(),
            input,
        };
        self.accepted(instance, request, "RaiseEvent").await
    }

    /// Terminates the instance with `reason` as its output; with `recursive`, its running
    /// sub-orchestrations too.
    pub async fn terminate(
        &self,
        instance: &InstanceId,
        reason: &impl Serialize,
        recursive: bool,
    ) -> Result<(), Error> {
        let reason = self.payload(reason, || "the reason of a termination".into())?;
        let request = ClientRequest::Terminate {
            instance: instance.clone(),
            reason,
            recurse: recursive,
        };
        self.accepted(instance, request, "Terminate").await
    }

    /// Suspends the instance: events wait until it is resumed.
    pub async fn suspend(&self, instance: &InstanceId, reason: &str) -> Result<(), Error> {
        let request = ClientRequest::Suspend {
            instance: instance.clone(),
            reason: self.payload(&reason, || "the reason of a suspension".into())?,
        };
        self.accepted(instance, request, "Suspend").await
    }

    /// Resumes a suspended instance.
    pub async fn resume(&self, instance: &InstanceId, reason: &str) -> Result<(), Error> {
        let request = ClientRequest::Resume {
            instance: instance.clone(),
            reason: self.payload(&reason, || "the reason of a resumption".into())?,
        };
        self.accepted(instance, request, "Resume").await
    }

    /// Starts the instance again with its original name, input, version and tags: under a
    /// fresh id if `new_id`, else under the same id, which requires it to have finished.
    pub async fn restart(&self, instance: &InstanceId, new_id: bool) -> Result<InstanceId, Error> {
        let view = self
            .get_state(instance, true)
            .await?
            .ok_or_else(|| not_found(instance))?;
        if !new_id && !view.status.is_terminal() {
            return Err(Error::FailedPrecondition {
                instance: instance.clone(),
                status: view.status,
                operation: "a restart under the same id",
            });
        }
        let mut options = StartOptions {
            name: view.name,
            input: view.input,
            version: view.version,
            tags: view.tags,
            ..StartOptions::default()
        };
        if !new_id {
            options.instance_id = Some(instance.clone());
            options.reuse = TERMINAL.to_vec();
        }
        self.start(options).await
    }

    /// The history of the instance's current execution.
    pub async fn history(&self, instance: &InstanceId) -> Result<Vec<HistoryEvent>, Error> {
        let read = ReadEvent::GetHistory {
            instance: instance.clone(),
        };
        match self.read(self.partition_of(instance), read).await? {
            ReadResult::History(Some(history)) => Ok(history),
            ReadResult::History(None) => Err(not_found(instance)),
            other => Err(unexpected_read("GetHistory", &other)),
        }
    }

    async fn wait(
        &self,
        instance: &InstanceId,
        until: WaitUntil,
        timeout: Duration,
    ) -> Result<InstanceView, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let partition = self.partition_of(instance);
        if let Some(host) = self.inner.hosts.hosted(partition) {
            let waited = tokio::time::timeout_at(deadline, host.wait(instance.clone(), until));
            match waited.await {
                Err(_) => return Err(timeout_error(instance, until, timeout)),
                Ok(Err(Error::PartitionStopped { .. })) if self.inner.hosts.reroutes_stopped() => {
                    tracing::debug!(partition = %partition, "host stopped; waiting via the input");
                }
                Ok(done) => return done,
            }
        }
        self.wait_remote(instance, until, deadline, timeout).await
    }

    /// Waits through the partition's input, for a partition this process does not host: the
    /// partition keeps the wait in its state and answers when the condition holds or the
    /// deadline passes.
    async fn wait_remote(
        &self,
        instance: &InstanceId,
        until: WaitUntil,
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> Result<InstanceView, Error> {
        let timed_out = || timeout_error(instance, until, timeout);
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let wait = WaitFor {
            instance: instance.clone(),
            until,
            deadline: Some(system_now().saturating_add(left)),
            payloads: true,
        };
        let call = self
            .inner
            .pipelines
            .call(self.partition_of(instance), ClientRequest::WaitFor(wait));
        // The partition answers at the deadline; the margin covers the trip back.
        match tokio::time::timeout_at(deadline + WAIT_ANSWER_MARGIN, call)
            .await
            .map_err(|_| timed_out())??
        {
            ClientResponse::Instance(view) => Ok(*view),
            ClientResponse::Rejected(Rejection::DeadlineExceeded { .. }) => Err(timed_out()),
            ClientResponse::Rejected(rejection) => Err(rejected(rejection, "a wait")),
            other => Err(unexpected("WaitFor", &other)),
        }
    }

    /// Sends `request`, as it is, to the partition of `instance` and returns the answer; a
    /// rejection becomes its error. For front doors that hold requests in the model's own
    /// terms (the gRPC sidecar); the typed calls above are the same requests, built for you.
    /// Payloads are not checked here: the caller checks them against `payload_bytes_max`.
    pub async fn send(
        &self,
        instance: &InstanceId,
        request: ClientRequest,
    ) -> Result<ClientResponse, Error> {
        self.call(instance, request).await
    }

    /// Answers `read` from the live state of `partition`.
    pub async fn read_partition(
        &self,
        partition: PartitionId,
        read: ReadEvent,
    ) -> Result<ReadResult, Error> {
        self.read(partition, read).await
    }

    async fn accepted(
        &self,
        instance: &InstanceId,
        request: ClientRequest,
        name: &'static str,
    ) -> Result<(), Error> {
        match self.call(instance, request).await? {
            ClientResponse::Accepted => Ok(()),
            other => Err(unexpected(name, &other)),
        }
    }

    /// Sends `request` to the partition of `instance`; a rejection becomes its error.
    async fn call(
        &self,
        instance: &InstanceId,
        request: ClientRequest,
    ) -> Result<ClientResponse, Error> {
        let operation = request_name(&request);
        self.call_partition(self.partition_of(instance), request)
            .await
            .and_then(|response| match response {
                ClientResponse::Rejected(rejection) => Err(rejected(rejection, operation)),
                response => Ok(response),
            })
    }

    /// Sends `request` to `partition` and returns its answer, rejections included.
    async fn call_partition(
        &self,
        partition: PartitionId,
        request: ClientRequest,
    ) -> Result<ClientResponse, Error> {
        let call = self.inner.pipelines.call(partition, request);
        let limit = self.inner.options.request_timeout;
        tokio::time::timeout(limit, call).await.map_err(|_| {
            Error::Closed(format!("no answer from partition {partition} in {limit:?}"))
        })?
    }

    /// Answers `read` from the live state of `partition`: on its host when this process has
    /// it, else through the partition's input (logged there, one append).
    async fn read(&self, partition: PartitionId, read: ReadEvent) -> Result<ReadResult, Error> {
        if let Some(host) = self.inner.hosts.hosted(partition) {
            match host.read(read.clone()).await {
                Err(Error::PartitionStopped { .. }) if self.inner.hosts.reroutes_stopped() => {
                    tracing::debug!(partition = %partition, "host stopped; reading via the input");
                }
                done => return done,
            }
        }
        self.inner.hosts.check_open()?;
        match self
            .call_partition(partition, ClientRequest::Read(read))
            .await?
        {
            ClientResponse::Read(result) => Ok(*result),
            ClientResponse::Rejected(rejection) => Err(rejected(rejection, "a read")),
            other => Err(unexpected("Read", &other)),
        }
    }

    fn partition_of(&self, instance: &InstanceId) -> PartitionId {
        partition_of(instance, self.inner.partition_count)
    }

    /// The task hub's partition count.
    pub fn partition_count(&self) -> u32 {
        self.inner.partition_count
    }

    /// `value` as a JSON payload, refused if over the limit.
    fn payload(&self, value: &impl Serialize, what: impl Fn() -> String) -> Result<Payload, Error> {
        let json = serde_json::to_string(value).map_err(|e| Error::Serialize {
            what: what(),
            reason: e.to_string(),
        })?;
        let payload = Some(json);
        self.check_payload(&payload, what)?;
        Ok(payload)
    }

    /// Refuses `payload` with `PayloadTooLarge` if it is over `payload_bytes_max`; `what`
    /// names it in the error.
    pub fn check_payload(&self, payload: &Payload, what: impl Fn() -> String) -> Result<(), Error> {
        let size = payload.as_ref().map_or(0, |p| p.len() as u64);
        let max = self.inner.options.payload_bytes_max;
        if size > max {
            return Err(Error::PayloadTooLarge {
                what: what(),
                actual: size,
                max,
            });
        }
        Ok(())
    }
}

/// How long past its deadline a wait through the input may take to be answered (the answer's
/// trip back through the client's response queue) before the client gives up on it.
const WAIT_ANSWER_MARGIN: Duration = Duration::from_secs(5);

/// The terminal statuses: those a restart under the same id may replace.
const TERMINAL: [OrchestrationStatus; 4] = [
    OrchestrationStatus::Completed,
    OrchestrationStatus::Failed,
    OrchestrationStatus::Canceled,
    OrchestrationStatus::Terminated,
];

/// Reads the output of a finished instance as a `T`.
pub fn output<T: DeserializeOwned>(view: &InstanceView) -> Result<T, Error> {
    let what = || format!("the output of instance '{}'", view.instance_id);
    let text = view.output.as_deref().ok_or_else(|| Error::Deserialize {
        what: what(),
        reason: "the instance has no output (or payloads were not asked for)".into(),
    })?;
    serde_json::from_str(text).map_err(|e| Error::Deserialize {
        what: what(),
        reason: e.to_string(),
    })
}

/// Reads a custom status as a `T`.
pub fn custom_status<T: DeserializeOwned>(view: &InstanceView) -> Result<T, Error> {
    let what = || format!("the custom status of instance '{}'", view.instance_id);
    let text = view
        .custom_status
        .as_deref()
        .ok_or_else(|| Error::Deserialize {
            what: what(),
            reason: "the instance has no custom status".into(),
        })?;
    serde_json::from_str(text).map_err(|e| Error::Deserialize {
        what: what(),
        reason: e.to_string(),
    })
}

/// A fresh instance id: 128 random bits, written like a UUID.
fn new_instance_id() -> InstanceId {
    let hex = format!("{:032x}", random_u128());
    let parts = [
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32],
    ];
    InstanceId::new(parts.join("-"))
}

fn not_found(instance: &InstanceId) -> Error {
    Error::NotFound {
        instance: instance.clone(),
    }
}

fn timeout_error(instance: &InstanceId, until: WaitUntil, waited: Duration) -> Error {
    Error::Timeout {
        instance: instance.clone(),
        until: until_name(until),
        waited,
    }
}

fn until_name(until: WaitUntil) -> &'static str {
    match until {
        WaitUntil::Start => "start",
        WaitUntil::Completion => "complete",
    }
}

fn request_name(request: &ClientRequest) -> &'static str {
    match request {
        ClientRequest::Create(_) => "a start",
        ClientRequest::RaiseEvent { .. } => "raising an event",
        ClientRequest::Terminate { .. } => "a termination",
        ClientRequest::Suspend { .. } => "a suspension",
        ClientRequest::Resume { .. } => "a resumption",
        ClientRequest::SignalEntity(_) => "signalling an entity",
        ClientRequest::Purge { .. } => "a purge",
        ClientRequest::PurgeByFilter { .. } => "a purge",
        ClientRequest::Rewind { .. } => "a rewind",
        ClientRequest::WaitFor(_) => "a wait",
        ClientRequest::ReleaseEntityLock { .. } => "releasing an entity lock",
        ClientRequest::Read(_) => "a read",
    }
}

/// The error for a request turned down by a partition.
fn rejected(rejection: Rejection, operation: &'static str) -> Error {
    match rejection {
        Rejection::NotFound { instance } => Error::NotFound { instance },
        Rejection::AlreadyExists { instance, status } => Error::AlreadyExists { instance, status },
        Rejection::FailedPrecondition { instance, status } => Error::FailedPrecondition {
            instance,
            status,
            operation,
        },
        Rejection::WrongPartition { instance, owner } => Error::InvalidRequest {
            reason: format!("instance '{instance}' lives on partition {owner}: misrouted"),
        },
        Rejection::InvalidArgument { reason } => Error::InvalidRequest { reason },
        Rejection::DeadlineExceeded { instance } => Error::Timeout {
            instance,
            until: "answer",
            waited: Duration::ZERO,
        },
        Rejection::LimitExceeded { limit, max } => Error::PartitionLimit { limit, max },
    }
}

fn unexpected(request: &str, response: &ClientResponse) -> Error {
    Error::InvalidRequest {
        reason: format!("unexpected answer to {request}: {response:?}"),
    }
}

fn unexpected_read(read: &str, result: &ReadResult) -> Error {
    Error::InvalidRequest {
        reason: format!("unexpected answer to {read}: {result:?}"),
    }
}

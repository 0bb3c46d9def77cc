//! How a client's requests reach partitions and how their answers come back.
//!
//! Partitions deduplicate a client's requests by sequence number: a number seen before, or one
//! too far below the highest seen from the client, is taken for a retry. So the requests of
//! one client should enter a partition's input queue in number order, and each partition gets
//! numbers of its own. One task per partition does that: it takes the requests waiting for its
//! partition, numbers them in order, and sends them in one call (one durable append for many
//! requests), retrying the same call until it succeeds.
//!
//! When this process hosts the partition, the requests go straight to its host instead, and
//! the task keeps a copy of each until it is answered: a host that stops first (its partition
//! moved to another node) may not have logged them, so they go again through the transport,
//! under the same numbers.
//!
//! Answers come back on the client's own response queue, which one task reads; it hands each
//! answer to the caller waiting for that number. An answer nobody waits for any more (a caller
//! that timed out, a duplicate) is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netherite_core::partition::{ClientRequest, ClientResponse};
use netherite_core::transport::Transport;
use netherite_core::{ClientId, InputPosition, PartitionId, RequestSeq};
use tokio::sync::{mpsc, oneshot, watch};

use crate::Error;
use crate::engine::HostMap;
use crate::host::PartitionHost;
use crate::wire::{self, ClientMessage, InputMessage};

/// The most requests one send to a partition carries.
const SEND_REQUESTS_MAX: usize = 256;
/// Requests queued per partition before callers wait.
const QUEUE_MAX: usize = 4096;
/// Waiting callers above which answered-or-abandoned entries are swept out.
const PENDING_SWEEP_AT: usize = 1024;
/// The pause after a failed send; doubles up to [`RETRY_DELAY_MAX`].
const RETRY_DELAY_MIN: Duration = Duration::from_millis(10);
/// The longest pause between two attempts.
const RETRY_DELAY_MAX: Duration = Duration::from_secs(1);
/// Answers read between two discards of the response queue's front.
const DISCARD_EVERY: u64 = 256;

/// The answer a caller waits for.
pub(crate) type Answer = Result<ClientResponse, Error>;

/// A request on its way to a partition.
struct Outgoing {
    request: ClientRequest,
    reply: oneshot::Sender<Answer>,
}

/// Callers waiting for answers, by request number.
#[derive(Debug, Default)]
struct Pending {
    waiting: Mutex<Waiting>,
}

/// The map of waiting callers and the size at which it is next swept.
#[derive(Debug, Default)]
struct Waiting {
    callers: HashMap<RequestSeq, oneshot::Sender<Answer>>,
    sweep_at: usize,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a caller. Callers that gave up (timed out) are swept out now and then: when
    /// the map doubled since the last sweep, so that sweeping costs O(1) per call.
    fn insert(&self, seq: RequestSeq, reply: oneshot::Sender<Answer>) {
        let mut waiting = self.lock();
        if waiting.callers.len() >= waiting.sweep_at.max(PENDING_SWEEP_AT) {
            waiting.callers.retain(|_, reply| !reply.is_closed());
            waiting.sweep_at = 2 * waiting.callers.len();
        }
        waiting.callers.insert(seq, reply);
    }

    /// Whether a caller still waits for the answer to `seq`.
    fn is_waiting(&self, seq: RequestSeq) -> bool {
        self.lock()
            .callers
            .get(&seq)
            .is_some_and(|reply| !reply.is_closed())
    }

    fn answer(&self, seq: RequestSeq, answer: Answer) {
        if let Some(reply) = self.lock().callers.remove(&seq) {
            let _ = reply.send(answer);
        }
    }
}

/// The client's side: one queue per partition, and the waiting callers.
#[derive(Debug)]
pub(crate) struct Pipelines {
    queues: Vec<mpsc::Sender<Outgoing>>,
    /// Dropped with the client, which ends the response reader.
    _alive: watch::Sender<()>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

impl Pipelines {
    /// Starts the tasks of client `client`: a sender per partition and the answer reader.
    pub(crate) async fn start(
        client: ClientId,
        transport: Arc<dyn Transport>,
        hosts: Arc<HostMap>,
    ) -> Result<Pipelines, Error> {
        let pending = Arc::new(Pending::default());
        let responses = transport
            .client_responses(client, InputPosition::START)
            .await
            .map_err(|source| Error::Transport {
                what: format!("subscribing to the responses of client {client}"),
                source,
            })?;
        let (alive, alive_rx) = watch::channel(());
        let reader = Reader {
            client,
            transport: transport.clone(),
            pending: pending.clone(),
            alive: alive_rx,
        };
        tokio::spawn(reader.run(responses));

        let queues = (0..transport.partition_count())
            .map(|p| {
                let (queue, receiver) = mpsc::channel(QUEUE_MAX);
                let sender = Sender {
                    client,
                    partition: PartitionId(p),
                    transport: transport.clone(),
                    hosts: hosts.clone(),
                    pending: pending.clone(),
                    next: 1,
                    direct: None,
                };
                tokio::spawn(sender.run(receiver));
                queue
            })
            .collect();
        Ok(Pipelines {
            queues,
            _alive: alive,
        })
    }

    /// Sends `request` to `partition` and waits for its answer.
    pub(crate) async fn call(&self, partition: PartitionId, request: ClientRequest) -> Answer {
        let queue = self
            .queues
            .get(partition.0 as usize)
            .ok_or_else(|| Error::InvalidRequest {
                reason: format!("partition {partition} does not exist"),
            })?;
        let (reply, answer) = oneshot::channel();
        let closed = || Error::Closed("the client's request pipeline stopped".into());
        queue
            .send(Outgoing { request, reply })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

/// Numbers and sends the requests for one partition.
struct Sender {
    client: ClientId,
    partition: PartitionId,
    transport: Arc<dyn Transport>,
    hosts: Arc<HostMap>,
    pending: Arc<Pending>,
    /// The number of the next request, below the partition's bits (see [`numbered_seq`]).
    next: u64,
    /// Requests handed to this process's host of the partition and not answered yet.
    direct: Option<Direct>,
}

/// Requests handed straight to a host, kept until answered: if the host stops first (its
/// partition moved to another node, or failed), they may never have been logged, so they go
/// again through the transport under the same numbers, and the partition's deduplication
/// answers again those that were logged.
struct Direct {
    host: Arc<PartitionHost>,
    requests: Vec<(RequestSeq, ClientRequest)>,
}

impl Sender {
    async fn run(mut self, mut queue: mpsc::Receiver<Outgoing>) {
        loop {
            let host = self.direct.as_ref().map(|direct| direct.host.clone());
            let first = tokio::select! {
                first = queue.recv() => first,
                () = host_ended(host) => {
                    self.resend_direct().await;
                    continue;
                }
            };
            let Some(first) = first else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < SEND_REQUESTS_MAX {
                match queue.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            self.send(batch).await;
        }
    }

    /// Numbers `batch`, registers its callers and sends it: straight to the partition's host
    /// when this process hosts it (its commit log is then the request's only durable record),
    /// else through the transport, retrying while that may help.
    async fn send(&mut self, batch: Vec<Outgoing>) {
        let mut numbered = Vec::with_capacity(batch.len());
        for outgoing in batch {
            let seq = numbered_seq(self.partition, self.next);
            self.next += 1;
            self.pending.insert(seq, outgoing.reply);
            numbered.push((seq, outgoing.request));
        }
        if let Some(host) = self.hosts.hosted(self.partition) {
            // A host that stopped took nothing; the transport then carries the same numbers.
            let copies = numbered.clone();
            match host.submit(self.client, numbered).await {
                Ok(()) => return self.keep_direct(host, copies).await,
                Err(returned) => {
                    tracing::debug!(partition = %self.partition,
                        "host stopped; requests sent through the transport");
                    numbered = returned;
                }
            }
        }
        self.send_through_transport(numbered).await;
    }

    /// Keeps `requests`, just handed to `host`, until they are answered; the unanswered ones
    /// handed to an earlier host go again through the transport.
    async fn keep_direct(
        &mut self,
        host: Arc<PartitionHost>,
        mut requests: Vec<(RequestSeq, ClientRequest)>,
    ) {
        if self
            .direct
            .as_ref()
            .is_some_and(|direct| !Arc::ptr_eq(&direct.host, &host))
        {
            self.resend_direct().await;
        }
        let direct = self.direct.get_or_insert_with(|| Direct {
            host,
            requests: Vec::new(),
        });
        let pending = &self.pending;
        direct.requests.retain(|(seq, _)| pending.is_waiting(*seq));
        direct.requests.append(&mut requests);
    }

    /// Sends again through the transport what a host that stopped left unanswered.
    async fn resend_direct(&mut self) {
        let Some(direct) = self.direct.take() else {
            return;
        };
        let pending = &self.pending;
        let unanswered: Vec<_> = direct
            .requests
            .into_iter()
            .filter(|(seq, _)| pending.is_waiting(*seq))
            .collect();
        if !unanswered.is_empty() {
            tracing::debug!(partition = %self.partition, requests = unanswered.len(),
                "host stopped before answering; requests sent again through the transport");
            self.send_through_transport(unanswered).await;
        }
    }

    async fn send_through_transport(&self, numbered: Vec<(RequestSeq, ClientRequest)>) {
        let mut payloads = Vec::with_capacity(numbered.len());
        let mut sent = Vec::with_capacity(numbered.len());
        for (seq, request) in numbered {
            let message = InputMessage::Client {
                client: self.client,
                seq,
                request: Box::new(request),
            };
            match wire::encode(&message) {
                Ok(payload) => {
                    payloads.push(payload);
                    sent.push(seq);
                }
                Err(source) => {
                    let what = "encoding a request".to_string();
                    self.pending
                        .answer(seq, Err(Error::Transport { what, source }));
                }
            }
        }
        if payloads.is_empty() {
            return;
        }
        if let Err(error) = self.deliver(payloads).await {
            for seq in sent {
                self.pending
                    .answer(seq, Err(transport_error(self.partition, &error)));
            }
        }
    }

    async fn deliver(&self, payloads: Vec<Vec<u8>>) -> Result<(), netherite_core::Error> {
        let mut delay = RETRY_DELAY_MIN;
        loop {
            match self.transport.send(self.partition, payloads.clone()).await {
                Ok(_) => return Ok(()),
                Err(error) if retryable(&error) => {
                    tracing::debug!(partition = %self.partition, %error, "request send retried");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_DELAY_MAX);
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// Resolves once `host` has stopped; never without one.
async fn host_ended(host: Option<Arc<PartitionHost>>) {
    match host {
        Some(host) => host.ended().await,
        None => std::future::pending().await,
    }
}

/// The bits of a request number below the partition's.
const SEQ_PARTITION_SHIFT: u32 = 40;

/// The number of the `n`th request of a client to `partition`: the partition in the high bits,
/// `n` below them. Each partition sees its own gapless run of numbers, so how far a late
/// request lags behind the newest (what deduplication tolerates, `CLIENT_SEQ_LAG_MAX`) counts
/// only requests to that partition; and numbers stay unique across partitions, so one map of
/// waiting callers serves all. 2^40 requests per partition outlast any client.
fn numbered_seq(partition: PartitionId, n: u64) -> RequestSeq {
    RequestSeq(u64::from(partition.0) << SEQ_PARTITION_SHIFT | n)
}

/// Whether a failed send may succeed later: I/O trouble, or a full queue (back-pressure).
fn retryable(error: &netherite_core::Error) -> bool {
    match error {
        netherite_core::Error::Io { .. } => true,
        netherite_core::Error::LimitExceeded { limit, .. } => !limit.contains("bytes"),
        _ => false,
    }
}

fn transport_error(partition: PartitionId, error: &netherite_core::Error) -> Error {
    if matches!(error, netherite_core::Error::Closed) {
        return Error::Closed("the transport has shut down".into());
    }
    let source = match error {
        netherite_core::Error::LimitExceeded { limit, actual, max } => {
            netherite_core::Error::LimitExceeded {
                limit,
                actual: *actual,
                max: *max,
            }
        }
        other => netherite_core::Error::Io {
            operation: "send",
            reason: other.to_string(),
        },
    };
    Error::Transport {
        what: format!("sending a request to partition {partition}"),
        source,
    }
}

/// Reads the client's response queue and hands answers to their callers.
struct Reader {
    client: ClientId,
    transport: Arc<dyn Transport>,
    pending: Arc<Pending>,
    alive: watch::Receiver<()>,
}

impl Reader {
    async fn run(mut self, mut responses: netherite_core::transport::InputStream) {
        let mut next = InputPosition::START;
        let mut read = 0u64;
        loop {
            let item = tokio::select! {
                item = responses.next() => item,
                _ = self.alive.changed() => return,
            };
            match item {
                Some(Ok(event)) if event.position >= next => {
                    next = event.next_position();
                    self.deliver(&event.payload, event.position);
                    read += 1;
                    if read.is_multiple_of(DISCARD_EVERY) {
                        let _ = self
                            .transport
                            .discard_responses_before(self.client, next)
                            .await;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(netherite_core::Error::Closed)) | None => return,
                Some(Err(error)) => {
                    tracing::warn!(client = %self.client, %error, "response queue failed");
                    tokio::time::sleep(RETRY_DELAY_MAX).await;
                    match self.transport.client_responses(self.client, next).await {
                        Ok(stream) => responses = stream,
                        Err(_) => return,
                    }
                }
            }
        }
    }

    fn deliver(&self, payload: &[u8], position: InputPosition) {
        let queue = format!("responses of client {}", self.client);
        match wire::decode::<ClientMessage>(payload, &queue, position) {
            Ok(message) => self.pending.answer(message.seq, Ok(message.response)),
            Err(error) => {
                tracing::error!(client = %self.client, %error, "undecodable answer dropped");
            }
        }
    }
}

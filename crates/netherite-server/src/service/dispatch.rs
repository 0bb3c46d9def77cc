//! Work-item streams: handing the engine's remote work to connected workers and taking their
//! answers back.
//!
//! Each `GetWorkItems` call is a stream with its own caps on outstanding items (what the worker
//! asked for, else [`OUTSTANDING_DEFAULT`]) and its own filters. A stream takes the first
//! queued item it may run, gives it a completion token, records it as outstanding, and sends
//! it; between items it sends a health ping every [`HEALTH_PING_EVERY`]. When the stream
//! ends, everything still outstanding on it goes back to the queue, in front, so another
//! worker (or the same one after reconnecting) runs it.
//!
//! A completion token is `<id>.<tag>`: `id` numbers the dispatch, `tag` is a keyed hash of it
//! with a key drawn when the server starts. A token that does not parse or whose tag is wrong
//! was never issued by this server and is refused as invalid; a genuine token that is no
//! longer outstanding (answered already, or re-dispatched after its stream ended) is stale and
//! its answer is ignored. Workers that send no token are matched by instance id (episodes and
//! entity batches) or by instance id and task id (activities).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netherite::remote::{Assignment, RemoteWork, WorkItem};
use tokio::sync::{Notify, mpsc};
use tonic::Status;

use crate::pb;

/// How often an idle stream tells its worker it is alive (workers give up after 120 s).
pub const HEALTH_PING_EVERY: Duration = Duration::from_secs(15);
/// Outstanding items of one kind per stream when the worker names no maximum.
pub const OUTSTANDING_DEFAULT: usize = 100;
/// The largest per-kind cap a worker may ask for.
pub const OUTSTANDING_MAX: usize = 10_000;
/// Work items buffered per stream between the dispatcher and the gRPC layer.
const STREAM_BUFFER: usize = 16;
/// The largest work item sent: the gRPC clients of the SDKs refuse a message over 4 MiB by
/// default and drop their whole stream when one comes. A larger item (an execution whose
/// history grew past it) is failed instead, so it cannot block every worker.
pub const WORK_ITEM_BYTES_MAX: usize = 4 << 20;

/// The three kinds of work item, as array indices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Episode = 0,
    Activity = 1,
    Entity = 2,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Episode => "an orchestration",
            Kind::Activity => "an activity",
            Kind::Entity => "an entity",
        }
    }
}

fn kind_of(item: &WorkItem) -> Kind {
    match item {
        WorkItem::Episode(_) => Kind::Episode,
        WorkItem::Activity(_) => Kind::Activity,
        WorkItem::EntityBatch(_) => Kind::Entity,
    }
}

/// What one stream asked for: caps per kind and the names it runs (`None`: any).
#[derive(Clone, Debug)]
pub(crate) struct StreamSpec {
    caps: [usize; 3],
    filters: Option<Filters>,
}

#[derive(Clone, Debug)]
struct Filters {
    orchestrations: Vec<String>,
    activities: Vec<String>,
    entities: Vec<String>,
}

impl StreamSpec {
    /// The caps and filters of a `GetWorkItems` request.
    pub(crate) fn from_request(request: &pb::GetWorkItemsRequest) -> StreamSpec {
        let cap = |asked: i32| match usize::try_from(asked) {
            Ok(0) | Err(_) => OUTSTANDING_DEFAULT,
            Ok(n) => n.min(OUTSTANDING_MAX),
        };
        let caps = [
            cap(request.max_concurrent_orchestration_work_items),
            cap(request.max_concurrent_activity_work_items),
            cap(request.max_concurrent_entity_work_items),
        ];
        let filters = request.work_item_filters.as_ref().map(|f| Filters {
            orchestrations: f.orchestrations.iter().map(|o| o.name.clone()).collect(),
            activities: f.activities.iter().map(|a| a.name.clone()).collect(),
            entities: f.entities.iter().map(|e| e.name.to_lowercase()).collect(),
        });
        StreamSpec { caps, filters }
    }

    fn accepts(&self, item: &WorkItem) -> bool {
        let Some(filters) = &self.filters else {
            return true;
        };
        match item {
            WorkItem::Episode(episode) => {
                let name = netherite::remote::orchestration_name(episode);
                name.is_some_and(|n| filters.orchestrations.iter().any(|f| f == n))
            }
            WorkItem::Activity(activity) => filters.activities.contains(&activity.name),
            WorkItem::EntityBatch(batch) => {
                let name = entity_name(batch.entity.as_str());
                filters.entities.iter().any(|f| f == name)
            }
        }
    }
}

/// The name part of an entity id `@name@key`.
fn entity_name(id: &str) -> &str {
    id.strip_prefix('@')
        .and_then(|rest| rest.split_once('@'))
        .map_or(id, |(name, _)| name)
}

/// One stream's counts of outstanding items, and a signal when one is answered.
#[derive(Debug, Default)]
struct StreamState {
    outstanding: Mutex<[usize; 3]>,
    freed: Notify,
}

impl StreamState {
    fn counts(&self) -> std::sync::MutexGuard<'_, [usize; 3]> {
        self.outstanding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// An item handed to a stream and not answered yet.
#[derive(Debug)]
struct Outstanding {
    stream: u64,
    assignment: Assignment,
}

/// What a completion names: its token, or what a token-less worker sends instead.
#[derive(Clone, Debug)]
pub(crate) enum Claim {
    /// A completion token.
    Token(String),
    /// An episode of this instance.
    Instance(String),
    /// The activity `task_id` of this instance.
    Task(String, i32),
}

/// Every stream and every outstanding item of the server.
#[derive(Debug)]
pub(crate) struct Dispatcher {
    work: RemoteWork,
    /// Set when the server stops: every stream ends with `UNAVAILABLE`.
    stopping: tokio::sync::watch::Receiver<bool>,
    key: RandomState,
    next_id: AtomicU64,
    state: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    outstanding: HashMap<u64, Outstanding>,
    streams: HashMap<u64, Arc<StreamState>>,
}

impl Dispatcher {
    pub(crate) fn new(
        work: RemoteWork,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> Dispatcher {
        Dispatcher {
            work,
            stopping,
            key: RandomState::new(),
            next_id: AtomicU64::new(1),
            state: Mutex::new(Table::default()),
        }
    }

    /// The queue this dispatcher serves.
    pub(crate) fn work(&self) -> &RemoteWork {
        &self.work
    }

    /// Opens a stream for `spec`: a task feeds it until the receiver is dropped.
    pub(crate) fn open(
        self: &Arc<Self>,
        spec: StreamSpec,
    ) -> mpsc::Receiver<Result<pb::WorkItem, Status>> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let stream = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(StreamState::default());
        self.table().streams.insert(stream, state.clone());
        tracing::info!(stream, "work-item stream opened");
        let dispatcher = self.clone();
        tokio::spawn(async move {
            dispatcher.feed(stream, &state, &spec, &tx).await;
            dispatcher.close(stream);
        });
        rx
    }

    /// Sends items and pings to one stream until its receiver goes away.
    async fn feed(
        &self,
        stream: u64,
        state: &StreamState,
        spec: &StreamSpec,
        tx: &mpsc::Sender<Result<pb::WorkItem, Status>>,
    ) {
        let mut ping = tokio::time::interval(HEALTH_PING_EVERY);
        let mut stopping = self.stopping.clone();
        loop {
            // Registered before the counts are read, so an answer in between is not missed.
            let freed = state.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let counts = *state.counts();
            let fits = |item: &WorkItem| {
                let kind = kind_of(item) as usize;
                counts[kind] < spec.caps[kind] && spec.accepts(item)
            };
            tokio::select! {
                () = tx.closed() => return,
                () = stopped(&mut stopping) => {
                    let _ = tx.send(Err(Status::unavailable("the server is shutting down"))).await;
                    return;
                }
                _ = ping.tick() => {
                    if tx.send(Ok(health_ping())).await.is_err() {
                        return;
                    }
                }
                () = freed => {}
                assignment = self.work.take(fits) => {
                    if !self.hand_out(stream, state, assignment, tx).await {
                        return;
                    }
                }
            }
        }
    }

    /// Records `assignment` as outstanding on `stream` and sends it; false if the stream is
    /// gone (the assignment is then back in the queue).
    async fn hand_out(
        &self,
        stream: u64,
        state: &StreamState,
        assignment: Assignment,
        tx: &mpsc::Sender<Result<pb::WorkItem, Status>>,
    ) -> bool {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let token = self.token(id);
        let message = match super::work::to_wire(assignment.item(), token) {
            Ok(message) => message,
            Err(error) => {
                // Our own history did not convert: a bug, reported, and the item failed back.
                tracing::error!(instance = %assignment.item().instance(), %error,
                    "work item does not convert to the wire");
                super::work::fail_unsendable(assignment, &error.to_string()).await;
                return true;
            }
        };
        let size = prost::Message::encoded_len(&message);
        if size > WORK_ITEM_BYTES_MAX {
            let reason = format!(
                "the work item is {size} bytes, over the {WORK_ITEM_BYTES_MAX} a worker takes \
                 (work_item_bytes_max); use continue-as-new to keep histories short"
            );
            tracing::warn!(instance = %assignment.item().instance(), size,
                "work item too large to send; failed");
            super::work::fail_unsendable(assignment, &reason).await;
            return true;
        }
        state.counts()[kind_of(assignment.item()) as usize] += 1;
        let outstanding = Outstanding { stream, assignment };
        self.table().outstanding.insert(id, outstanding);
        if tx.send(Ok(message)).await.is_ok() {
            return true;
        }
        if let Some(entry) = self.take_outstanding(id) {
            self.work.requeue(entry.assignment);
        }
        false
    }

    /// Ends a stream: what it still had outstanding goes back to the queue.
    fn close(&self, stream: u64) {
        let returned: Vec<Assignment> = {
            let mut table = self.table();
            table.streams.remove(&stream);
            let ids: Vec<u64> = table
                .outstanding
                .iter()
                .filter(|(_, o)| o.stream == stream)
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| table.outstanding.remove(id))
                .map(|o| o.assignment)
                .collect()
        };
        tracing::info!(stream, requeued = returned.len(), "work-item stream closed");
        for assignment in returned {
            self.work.requeue(assignment);
        }
    }

    /// The outstanding assignment of kind `kind` that `claim` names, taken out; `Ok(None)`
    /// when it is stale; `INVALID_ARGUMENT`, leaving the item outstanding, when the token was
    /// never issued here or belongs to an item of another kind.
    pub(crate) fn claim(&self, claim: &Claim, kind: Kind) -> Result<Option<Assignment>, Status> {
        let id = match claim {
            Claim::Token(token) => {
                let id = self.verify(token)?;
                self.check_kind(id, kind)?;
                id
            }
            Claim::Instance(instance) => match self.find(|item| {
                matches!(item, WorkItem::Episode(_)) && item.instance().as_str() == instance
            }) {
                Some(id) => id,
                None => return Ok(None),
            },
            Claim::Task(instance, task) => match self.find(|item| {
                matches!(item, WorkItem::Activity(a)
                    if a.instance.as_str() == instance && a.task_id == *task)
            }) {
                Some(id) => id,
                None => return Ok(None),
            },
        };
        Ok(self.take_outstanding(id).map(|o| o.assignment))
    }

    /// Refuses a genuine token of an outstanding item of another kind than the call's.
    fn check_kind(&self, id: u64, kind: Kind) -> Result<(), Status> {
        let table = self.table();
        let Some(entry) = table.outstanding.get(&id) else {
            return Ok(());
        };
        let actual = kind_of(entry.assignment.item());
        if actual != kind {
            return Err(Status::invalid_argument(format!(
                "the completion token is {}'s work item, not {}'s",
                actual.name(),
                kind.name()
            )));
        }
        Ok(())
    }

    fn find(&self, matches: impl Fn(&WorkItem) -> bool) -> Option<u64> {
        let table = self.table();
        let found = table.outstanding.iter();
        found
            .filter(|(_, o)| matches(o.assignment.item()))
            .map(|(id, _)| *id)
            .min()
    }

    /// Removes an outstanding entry and frees its slot on its stream.
    fn take_outstanding(&self, id: u64) -> Option<Outstanding> {
        let mut table = self.table();
        let entry = table.outstanding.remove(&id)?;
        if let Some(state) = table.streams.get(&entry.stream) {
            let kind = kind_of(entry.assignment.item()) as usize;
            let mut counts = state.counts();
            counts[kind] = counts[kind].saturating_sub(1);
            drop(counts);
            state.freed.notify_waiters();
        }
        Some(entry)
    }

    fn token(&self, id: u64) -> String {
        format!("{id}.{:016x}", self.key.hash_one(id))
    }

    fn verify(&self, token: &str) -> Result<u64, Status> {
        let forged = || {
            let message = format!("unknown completion token {token:?}");
            Status::invalid_argument(super::status::bounded(message))
        };
        let (id, tag) = token.split_once('.').ok_or_else(forged)?;
        let id: u64 = id.parse().map_err(|_| forged())?;
        if tag != format!("{:016x}", self.key.hash_one(id)) {
            return Err(forged());
        }
        Ok(id)
    }

    /// How many items are outstanding on all streams.
    pub(crate) fn outstanding(&self) -> usize {
        self.table().outstanding.len()
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Resolves once `stopping` says the server stops (or its sender is gone).
pub(crate) async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

fn health_ping() -> pb::WorkItem {
    pb::WorkItem {
        request: Some(pb::work_item::Request::HealthPing(pb::HealthPing {})),
        completion_token: String::new(),
    }
}

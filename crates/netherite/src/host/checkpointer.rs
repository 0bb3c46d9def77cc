//! The checkpoint task: writes the state the loop hands it, then trims the log and the input.
//!
//! The loop decides *when* (log bytes, update count or idle time since the last checkpoint,
//! from the settings) and encodes the state, which is quick; the task does the slow part in
//! the background while the loop goes on applying updates:
//!
//! 1. wait until the commit position the state covers is durable (a checkpoint must never
//!    claim updates the log could still lose);
//! 2. write the state through the store and make it a checkpoint;
//! 3. truncate the commit log and discard the input queue before the positions of the
//!    *previous* checkpoint, which the store may still fall back to.
//!
//! One checkpoint at a time: the loop does not hand over another while one is under way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use netherite_core::transport::Transport;
use netherite_core::{CommitPosition, InputPosition, PartitionId};
use netherite_faster::log::{CommitLog, LogPosition};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::checkpoint::StateStore;
use super::durability::DurableWatch;
use super::is_retryable;
use crate::Error;

/// How often one checkpoint is tried when a device fails in a retryable way.
const ATTEMPTS_MAX: u32 = 4;
/// The pause before the second attempt; it doubles with each further one.
const RETRY_DELAY: Duration = Duration::from_millis(10);

/// When checkpoints are due.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cadence {
    /// Commit-log bytes since the last checkpoint.
    pub(crate) log_bytes_max: u64,
    /// Updates since the last checkpoint.
    pub(crate) events_max: u64,
    /// Idle time after the last update, once there is something to checkpoint.
    pub(crate) idle: Duration,
}

/// The positions a checkpoint covers.
pub(crate) type Covered = (CommitPosition, InputPosition);

/// One checkpoint to take.
struct Job {
    encoded: Vec<u8>,
    commit: CommitPosition,
    input: InputPosition,
}

/// The loop's side of the checkpoint task.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    partition: PartitionId,
    cadence: Cadence,
    jobs: Option<mpsc::Sender<Job>>,
    done: mpsc::Receiver<Result<Covered, Error>>,
    outcome: Option<Result<Covered, Error>>,
    task: Option<JoinHandle<()>>,
    busy: bool,
    events_since: u64,
    log_mark: u64,
    last_update: Instant,
    taken: u64,
    last: Option<Covered>,
    last_error: Option<String>,
}

/// What the checkpoint task works with.
pub(crate) struct CheckpointTask {
    pub(crate) partition: PartitionId,
    pub(crate) store: StateStore,
    pub(crate) log: Arc<CommitLog>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) durable: DurableWatch,
    /// The positions of the checkpoint recovered from, if any: the first truncation point.
    pub(crate) previous: Option<Covered>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("bytes", &self.encoded.len())
            .field("commit", &self.commit)
            .field("input", &self.input)
            .finish()
    }
}

impl Checkpointer {
    /// Starts the task for `work`; checkpoints become due by `cadence`.
    pub(crate) fn spawn(work: CheckpointTask, cadence: Cadence) -> Checkpointer {
        let (jobs, job_rx) = mpsc::channel(1);
        let (done_tx, done) = mpsc::channel(1);
        let partition = work.partition;
        let last = work.previous;
        let log_mark = last.map_or(0, |(commit, _)| commit.0);
        let task = tokio::spawn(work.run(job_rx, done_tx));
        Checkpointer {
            partition,
            cadence,
            jobs: Some(jobs),
            done,
            outcome: None,
            task: Some(task),
            busy: false,
            events_since: 0,
            log_mark,
            last_update: Instant::now(),
            taken: 0,
            last,
            last_error: None,
        }
    }

    /// Counts one applied update.
    pub(crate) fn applied(&mut self) {
        self.events_since += 1;
        self.last_update = Instant::now();
    }

    /// Whether updates were applied since the last checkpoint was handed over.
    pub(crate) fn has_news(&self) -> bool {
        self.events_since > 0
    }

    /// Whether a checkpoint is under way.
    pub(crate) fn is_busy(&self) -> bool {
        self.busy
    }

    /// Whether the log size or the update count calls for a checkpoint, with the log's
    /// tail at `appended`.
    pub(crate) fn is_due(&self, appended: u64) -> bool {
        let grown = appended.saturating_sub(self.log_mark);
        self.has_news()
            && (self.events_since >= self.cadence.events_max || grown >= self.cadence.log_bytes_max)
    }

    /// When an idle partition should checkpoint, if it has anything to checkpoint.
    pub(crate) fn idle_deadline(&self) -> Option<tokio::time::Instant> {
        if self.busy || !self.has_news() {
            return None;
        }
        let at = self.last_update.checked_add(self.cadence.idle)?;
        Some(tokio::time::Instant::from_std(at))
    }

    /// Hands the task a checkpoint of `encoded` covering `commit` and `input`.
    pub(crate) fn submit(
        &mut self,
        encoded: Vec<u8>,
        commit: CommitPosition,
        input: InputPosition,
    ) {
        let Some(jobs) = &self.jobs else { return };
        let job = Job {
            encoded,
            commit,
            input,
        };
        if jobs.try_send(job).is_ok() {
            tracing::debug!(partition = %self.partition, commit = %commit, input = %input,
                updates = self.events_since, "checkpoint started");
            self.busy = true;
            self.events_since = 0;
            self.log_mark = commit.0;
        }
    }

    /// Resolves when the checkpoint under way finished (never when none is).
    pub(crate) async fn finished(&mut self) {
        if !self.busy || self.outcome.is_some() {
            return std::future::pending().await;
        }
        let outcome = self.done.recv().await;
        self.outcome =
            Some(outcome.unwrap_or_else(|| Err(Error::Closed("the checkpoint task ended".into()))));
    }

    /// Takes note of how the finished checkpoint went.
    pub(crate) async fn collect(&mut self) {
        let Some(outcome) = self.outcome.take() else {
            return;
        };
        self.busy = false;
        match outcome {
            Ok(covered) => {
                self.taken += 1;
                self.last = Some(covered);
                self.last_error = None;
            }
            Err(error) => {
                tracing::error!(partition = %self.partition, %error, "checkpoint failed");
                self.last_error = Some(error.to_string());
                // Try again soon rather than only after the next batch of updates.
                self.events_since = self.events_since.max(1);
            }
        }
    }

    /// Waits until no checkpoint is under way.
    pub(crate) async fn wait_idle(&mut self) {
        if self.busy {
            self.finished().await;
            self.collect().await;
        }
    }

    /// Checkpoints taken since the host started.
    pub(crate) fn taken(&self) -> u64 {
        self.taken
    }

    /// The positions of the newest checkpoint.
    pub(crate) fn last(&self) -> Option<Covered> {
        self.last
    }

    /// Why the last attempt failed, if it did.
    pub(crate) fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Ends the task once it finished its work.
    pub(crate) async fn close(&mut self) {
        self.jobs = None;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl CheckpointTask {
    async fn run(
        mut self,
        mut jobs: mpsc::Receiver<Job>,
        done: mpsc::Sender<Result<Covered, Error>>,
    ) {
        while let Some(job) = jobs.recv().await {
            let started = Instant::now();
            let result = self.take_retrying(&job).await;
            if result.is_ok() {
                tracing::info!(partition = %self.partition, commit = %job.commit,
                    input = %job.input, state_bytes = job.encoded.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64, "checkpoint taken");
            }
            if done.send(result).await.is_err() {
                return;
            }
        }
    }

    /// Takes the checkpoint, trying again a few times when a device fails in a way that may
    /// pass (the store keeps the failed attempt's version for the next one).
    async fn take_retrying(&mut self, job: &Job) -> Result<Covered, Error> {
        let (mut attempt, mut delay) = (1, RETRY_DELAY);
        loop {
            match self.take(job).await {
                Err(error) if attempt < ATTEMPTS_MAX && is_retryable(&error) => {
                    tracing::warn!(partition = %self.partition, attempt, %error,
                        "checkpoint failed; trying again");
                    tokio::time::sleep(delay).await;
                    (attempt, delay) = (attempt + 1, delay * 2);
                }
                done => return done,
            }
        }
    }

    async fn take(&mut self, job: &Job) -> Result<Covered, Error> {
        self.durable.wait_for(job.commit).await?;
        self.store.save(&job.encoded, job.commit, job.input).await?;
        if let Some((commit, input)) = self.previous {
            self.trim(commit, input).await;
        }
        self.previous = Some((job.commit, job.input));
        Ok((job.commit, job.input))
    }

    /// Lets the log and the input drop what precedes the previous checkpoint. Failures only
    /// cost space, so they are logged and retried at the next checkpoint.
    async fn trim(&self, commit: CommitPosition, input: InputPosition) {
        if let Err(error) = self.log.truncate_before(LogPosition(commit.0)).await {
            tracing::warn!(partition = %self.partition, %error, "commit log truncation failed");
        }
        let discarded = self.transport.discard_before(self.partition, input).await;
        if let Err(error) = discarded {
            tracing::warn!(partition = %self.partition, %error, "input discard failed");
        }
    }
}

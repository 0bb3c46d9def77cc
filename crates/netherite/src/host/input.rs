//! The partition's input feed: a task that reads the transport's input stream, decodes each
//! payload and hands it to the loop through a bounded channel.
//!
//! The loop waits on many things at once and drops whichever wait loses; a channel receive
//! may be dropped that way without losing anything, whereas the `Transport` contract does not
//! promise that of a stream's `next`. The task also decodes payloads while the loop applies
//! earlier ones, and reads at most [`INPUT_PREFETCH_MAX`] events ahead of it.

use std::sync::Arc;

use netherite_core::transport::{InputStream, Transport};
use netherite_core::{InputPosition, PartitionId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::wire::{self, InputMessage};

/// How many input events the feed reads ahead of the loop.
pub(crate) const INPUT_PREFETCH_MAX: usize = 1024;

/// One item of the feed.
#[derive(Debug)]
pub(crate) enum Fed {
    /// A decoded input, with the position after it.
    Message {
        /// The position to resume at after this input.
        next: InputPosition,
        /// The input.
        message: InputMessage,
    },
    /// A payload that does not decode, at `position`.
    Undecodable {
        /// Where it sits in the queue.
        position: InputPosition,
        /// What the decoder said.
        error: netherite_core::Error,
    },
    /// The subscription failed; nothing more follows.
    Failed(netherite_core::Error),
    /// The subscription ended (the transport closed); nothing more follows.
    Ended,
}

/// A subscription to the partition's input, read by its own task.
#[derive(Debug)]
pub(crate) struct InputFeed {
    receiver: mpsc::Receiver<Fed>,
    task: JoinHandle<()>,
}

impl InputFeed {
    /// Subscribes to `partition`'s input from `from` and starts reading it.
    pub(crate) async fn subscribe(
        transport: &Arc<dyn Transport>,
        partition: PartitionId,
        from: InputPosition,
    ) -> Result<InputFeed, netherite_core::Error> {
        let stream = transport.subscribe(partition, from).await?;
        let (sender, receiver) = mpsc::channel(INPUT_PREFETCH_MAX);
        let task = tokio::spawn(read(partition, stream, sender));
        Ok(InputFeed { receiver, task })
    }

    /// The next item; waiting for it may be abandoned at any point without losing one.
    pub(crate) async fn next(&mut self) -> Fed {
        self.receiver.recv().await.unwrap_or(Fed::Ended)
    }

    /// The next item if one is ready.
    pub(crate) fn try_next(&mut self) -> Option<Fed> {
        match self.receiver.try_recv() {
            Ok(fed) => Some(fed),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => Some(Fed::Ended),
        }
    }
}

impl Drop for InputFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads `stream` into `sender` until the stream ends or the feed is dropped.
async fn read(partition: PartitionId, mut stream: InputStream, sender: mpsc::Sender<Fed>) {
    let queue = format!("partition {partition} input");
    loop {
        let fed = match stream.next().await {
            Some(Ok(event)) => {
                let next = event.next_position();
                match wire::decode::<InputMessage>(&event.payload, &queue, event.position) {
                    Ok(message) => Fed::Message { next, message },
                    Err(error) => Fed::Undecodable {
                        position: event.position,
                        error,
                    },
                }
            }
            Some(Err(error)) => Fed::Failed(error),
            None => Fed::Ended,
        };
        let last = matches!(fed, Fed::Failed(_) | Fed::Ended);
        if sender.send(fed).await.is_err() || last {
            return;
        }
    }
}

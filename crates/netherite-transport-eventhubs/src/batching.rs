//! Sending a list of events as few Event Hubs batches as fit, in order.
//!
//! Event Hubs takes a batch of events to one partition as a single message of at most the
//! link's size limit, and appends it whole, its events one after the other. The SDK's batch
//! knows the exact encoded size and says when an event does not fit; this module only decides
//! what to do then: send the batch so far, start a new one, and go on with the same event. An
//! event that does not fit even an empty batch is an `InvalidArgument`: payloads larger than
//! `inline_bytes_max` go aside, so only that setting above the event hub's message size limit
//! gets here, and no retry helps. Batches go one after the other; the send is durable when the
//! last one is acknowledged.

use netherite_core::Error;

/// One batch being filled.
pub(crate) trait Fill {
    /// Adds `event` if it fits; `false` when the batch is full.
    fn try_push(&mut self, event: &[u8]) -> Result<bool, Error>;

    /// Whether nothing was added yet.
    fn is_empty(&self) -> bool;
}

/// Where batches come from and go to: one partition of an event hub.
pub(crate) trait Batches {
    /// The batch type.
    type Batch: Fill;

    /// A new, empty batch.
    async fn create(&mut self) -> Result<Self::Batch, Error>;

    /// Sends `batch`; returns once it is acknowledged.
    async fn send(&mut self, batch: Self::Batch) -> Result<(), Error>;
}

/// Sends `events` in order, in batches from `sink`, each sent when full. Returns how many
/// batches were sent.
pub(crate) async fn send_batched<S: Batches>(
    events: &[Vec<u8>],
    sink: &mut S,
) -> Result<usize, Error> {
    let mut sent = 0;
    let mut batch = sink.create().await?;
    for event in events {
        if batch.try_push(event)? {
            continue;
        }
        if batch.is_empty() {
            return Err(too_large(event.len()));
        }
        sink.send(batch).await?;
        sent += 1;
        batch = sink.create().await?;
        if !batch.try_push(event)? {
            return Err(too_large(event.len()));
        }
    }
    if !batch.is_empty() {
        sink.send(batch).await?;
        sent += 1;
    }
    Ok(sent)
}

fn too_large(event_bytes: usize) -> Error {
    Error::InvalidArgument {
        operation: "send",
        reason: format!(
            "an event of {event_bytes} bytes does not fit an empty Event Hubs batch: \
             inline_bytes_max is above the event hub's message size limit"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch with room for `room` bytes, each event costing its length plus 2.
    struct Sized {
        room: usize,
        events: Vec<Vec<u8>>,
    }

    impl Fill for Sized {
        fn try_push(&mut self, event: &[u8]) -> Result<bool, Error> {
            let used: usize = self.events.iter().map(|e| e.len() + 2).sum();
            if used + event.len() + 2 > self.room {
                return Ok(false);
            }
            self.events.push(event.to_vec());
            Ok(true)
        }

        fn is_empty(&self) -> bool {
            self.events.is_empty()
        }
    }

    /// Hands out batches of `room` bytes and keeps what was sent.
    struct Recorder {
        room: usize,
        sent: Vec<Vec<Vec<u8>>>,
    }

    impl Batches for Recorder {
        type Batch = Sized;

        async fn create(&mut self) -> Result<Sized, Error> {
            Ok(Sized {
                room: self.room,
                events: Vec::new(),
            })
        }

        async fn send(&mut self, batch: Sized) -> Result<(), Error> {
            self.sent.push(batch.events);
            Ok(())
        }
    }

    async fn run(events: &[Vec<u8>], room: usize) -> (Result<usize, Error>, Vec<Vec<Vec<u8>>>) {
        let mut recorder = Recorder {
            room,
            sent: Vec::new(),
        };
        let result = send_batched(events, &mut recorder).await;
        (result, recorder.sent)
    }

    fn events(sizes: &[usize]) -> Vec<Vec<u8>> {
        let event = |(i, size): (usize, &usize)| vec![i as u8; *size];
        sizes.iter().enumerate().map(event).collect()
    }

    /// Events fill batches up to the limit and spill into the next, in their order; every
    /// batch is sent, the last one too, and none is empty.
    #[tokio::test]
    async fn events_are_split_at_the_limit_in_order() {
        let all = events(&[3, 3, 3, 8, 1, 1]);
        let (result, sent) = run(&all, 12).await;
        assert_eq!(result.unwrap(), 4);
        let sizes: Vec<Vec<usize>> = sent
            .iter()
            .map(|b| b.iter().map(Vec::len).collect())
            .collect();
        assert_eq!(sizes, vec![vec![3, 3], vec![3], vec![8], vec![1, 1]]);
        assert_eq!(sent.concat(), all);
    }

    /// Nothing to send sends nothing.
    #[tokio::test]
    async fn no_events_no_batches() {
        let (result, sent) = run(&[], 12).await;
        assert_eq!(result.unwrap(), 0);
        assert!(sent.is_empty());
    }

    /// An event larger than an empty batch is refused as a setting that cannot work; what
    /// came before it was sent.
    #[tokio::test]
    async fn an_event_larger_than_a_batch_is_refused() {
        let all = events(&[2, 20]);
        let (result, sent) = run(&all, 12).await;
        assert!(matches!(result, Err(Error::InvalidArgument { .. })));
        assert_eq!(sent, vec![vec![all[0].clone()]]);
    }
}

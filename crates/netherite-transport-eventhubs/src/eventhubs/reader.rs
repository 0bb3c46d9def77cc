//! Subscriptions: one connection and one receiver per subscription, started at exactly the
//! sequence number asked for, feeding an [`InputStream`] through a bounded channel.
//!
//! The receiver joins nothing and records nothing: where to start is the engine's decision.
//! The channel's bound is the back-pressure: a partition that does not read stops its receiver
//! from taking more. After a broken link the SDK attaches again from the original start, so
//! the feed drops events at or below the last one it passed on; an input whose numbers jump
//! ahead ends with an error, since a jump means events were lost to retention. Stored-aside
//! payloads are read back before their event is yielded; bodies that are not this transport's
//! are skipped with a warning.

use std::sync::Arc;

use azure_messaging_eventhubs::models::ReceivedEventData;
use azure_messaging_eventhubs::{ConsumerClient, EventReceiver};
use futures::StreamExt;
use netherite_core::transport::{InputEvent, InputStream};
use netherite_core::{ClientId, Error, InputPosition, PartitionId};
use tokio::sync::mpsc;

use super::hub::{Hub, io};
use crate::aside::Aside;
use crate::position::{position, sequence_number};
use crate::wire::{Body, Frame};

/// Events buffered between a receiver and its reader.
const BUFFER_EVENTS: usize = 256;

/// Which events of the partition a subscription yields.
#[derive(Clone, Debug)]
pub(crate) enum Filter {
    /// A partition's input: every payload, stored-aside ones read back.
    Input {
        /// Where the stored-aside payloads are.
        aside: Arc<Aside>,
        /// The netherite partition (for the blob ledger).
        partition: PartitionId,
    },
    /// One client's responses in a shared partition.
    Client(ClientId),
}

/// Subscribes to `hub`'s `partition` from `from`.
///
/// A partition's input refuses a position below what the event hub still holds (rule 8 of the
/// contract); a client's responses start at the oldest held instead, since what retention
/// dropped was long answered.
pub(crate) async fn subscribe(
    hub: &Hub,
    partition: u32,
    from: InputPosition,
    filter: Filter,
) -> Result<InputStream, Error> {
    let retained = hub.retained(partition).await?;
    let from = match filter {
        Filter::Input { .. } => {
            retained.check_start(from)?;
            from
        }
        Filter::Client(_) => retained.clamp_start(from),
    };
    let start = sequence_number(from)?;
    let consumer = hub.consumer().await?;
    let receiver = hub.receiver(&consumer, partition, start, true).await?;
    let (tx, rx) = mpsc::channel(BUFFER_EVENTS);
    let source = Source {
        hub: hub.name().to_string(),
        partition,
        filter,
        next: start,
    };
    tokio::spawn(feed(consumer, receiver, source, tx));
    Ok(InputStream::from_channel(rx))
}

/// Moves events from the receiver to the channel until the reader goes away or the receiver
/// fails; a failure is the stream's last item. Closes the receiver and its connection after.
async fn feed(
    consumer: ConsumerClient,
    receiver: EventReceiver,
    mut source: Source,
    tx: mpsc::Sender<Result<InputEvent, Error>>,
) {
    {
        let mut events = receiver.stream_events();
        loop {
            let received = tokio::select! {
                () = tx.closed() => break,
                received = events.next() => received,
            };
            let item = match received {
                None => break,
                Some(Err(error)) => Err(io("reading events", &error)),
                Some(Ok(event)) => match source.event(&event).await {
                    Some(item) => item,
                    None => continue,
                },
            };
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    }
    if let Err(error) = receiver.close().await {
        tracing::debug!(hub = source.hub, partition = source.partition, %error, "receiver close");
    }
    if let Err(error) = consumer.close().await {
        tracing::debug!(hub = source.hub, partition = source.partition, %error, "reader close");
    }
}

/// What a feed knows besides its receiver.
struct Source {
    hub: String,
    partition: u32,
    filter: Filter,
    /// The lowest sequence number not passed on yet.
    next: i64,
}

impl Source {
    /// The item an event stands for, or `None` to skip it.
    async fn event(&mut self, event: &ReceivedEventData) -> Option<Result<InputEvent, Error>> {
        let number = event.sequence_number()?;
        if number < self.next {
            return None;
        }
        let input = matches!(self.filter, Filter::Input { .. });
        if lost_between(self.next, number, input) {
            return Some(Err(self.skipped(number)));
        }
        self.next = number.saturating_add(1);
        let at = match position(number) {
            Ok(at) => at,
            Err(error) => return Some(Err(error)),
        };
        let body = event.event_data().body().unwrap_or_default();
        match Frame::decode(body) {
            Ok(frame) => self.payload(frame.body, at).await,
            Err(foreign) => {
                tracing::warn!(hub = self.hub, partition = self.partition, position = %at,
                    %foreign, "skipped an event that is not this transport's");
                None
            }
        }
    }

    /// The error for a receiver that jumped from `self.next` to `number`. Event Hubs numbers
    /// a partition's events one apart, so the events between are lost to this input: retention
    /// dropped them while the receiver opened or attached again. The subscriber resubscribes,
    /// and a start below the retention is refused by name.
    fn skipped(&self, number: i64) -> Error {
        Error::Io {
            operation: "subscribe",
            reason: format!(
                "event hub {} partition {} went from sequence number {} to {number}: the \
                 events between are no longer held",
                self.hub, self.partition, self.next
            ),
        }
    }

    /// The payload of `body` met at `at`, if this subscription yields it.
    async fn payload(&self, body: Body, at: InputPosition) -> Option<Result<InputEvent, Error>> {
        let event = |payload| InputEvent {
            position: at,
            payload,
        };
        match (&self.filter, body) {
            (Filter::Input { .. }, Body::Payload(payload)) => Some(Ok(event(payload))),
            (Filter::Input { aside, partition }, Body::Aside(reference)) => {
                let fetched = aside.fetch(*partition, &reference, at).await;
                fetched.map(|payload| payload.map(event)).transpose()
            }
            (Filter::Client(me), Body::Response { client, payload }) if client == *me => {
                Some(Ok(event(payload)))
            }
            (Filter::Client(_), Body::Response { .. }) => None,
            (_, _) => {
                tracing::warn!(hub = self.hub, partition = self.partition, position = %at,
                    "skipped an event of a kind this event hub does not carry");
                None
            }
        }
    }
}

/// Whether a receiver that was to pass on `next` and met `number` skipped events a
/// subscription must not lose: a partition's input, whose numbers run one apart, that jumped
/// ahead. A client's responses may start past what retention dropped.
fn lost_between(next: i64, number: i64, input: bool) -> bool {
    input && number > next
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An input loses events only when its numbers jump ahead; repeats and the next number are
    /// fine, and a client's responses may jump.
    #[test]
    fn only_an_input_that_jumps_ahead_lost_events() {
        assert!(lost_between(5, 7, true));
        assert!(!lost_between(5, 5, true));
        assert!(!lost_between(5, 3, true));
        assert!(!lost_between(5, 7, false));
    }
}

//! The replay executor driven the way the engine drives it: episodes over a growing history,
//! with a small backend (`sdk_harness`) applying the actions and feeding results back.

mod sdk_harness;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use netherite::sdk::{
    ActivityContext, ActivityError, Either, OrchestrationContext, Registry, RetryPolicy, TaskError,
};
use netherite_core::model::{ActionKind, EventKind, OrchestrationStatus};
use proptest::prelude::*;
use sdk_harness::{Hub, START, id, json, kinds, scheduled};
use serde_json::json;

fn say_hello(registry: &mut Registry) {
    registry
        .activity(
            "SayHello",
            |_ctx: ActivityContext, name: String| async move {
                Ok::<_, ActivityError>(format!("Hello {name}!"))
            },
        )
        .expect("a fresh name");
}

fn hello_sequence() -> Registry {
    let mut registry = Registry::new();
    registry
        .orchestration(
            "HelloCities",
            |ctx: OrchestrationContext, (): ()| async move {
                let mut greetings = Vec::new();
                for city in ["Tokyo", "Seattle", "London"] {
                    greetings.push(ctx.call_activity::<String>("SayHello", city).await?);
                }
                Ok::<_, TaskError>(greetings)
            },
        )
        .expect("a fresh name");
    say_hello(&mut registry);
    registry
}

/// The classic: three activities in sequence, one episode each, and the greetings in order.
#[test]
fn hello_sequence_completes_with_three_greetings() {
    let mut hub = Hub::new(hello_sequence());
    hub.start("hello", "HelloCities", None);
    hub.run();

    let hello = hub.instance("hello");
    assert_eq!(hello.status, OrchestrationStatus::Completed);
    let greetings = json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"]);
    assert_eq!(hello.output, json(greetings));
    let expected = [(0, "SayHello"), (1, "SayHello"), (2, "SayHello")];
    assert_eq!(
        scheduled(&hello.history),
        expected.map(|(n, s)| (n, s.to_string()))
    );
    assert_eq!(hub.episodes, 4, "one to start, one per activity result");
}

/// Each episode answers only with what is new: the actions across all episodes are the three
/// activities and the completion, each once, numbered 0 to 3.
#[test]
fn replay_asks_for_no_action_twice() {
    let mut hub = Hub::new(hello_sequence());
    hub.start("hello", "HelloCities", None);
    hub.run();

    let answers = &hub.instance("hello").answers;
    let per_episode: Vec<Vec<i32>> = answers
        .iter()
        .map(|answer| answer.actions.iter().map(|action| action.id).collect())
        .collect();
    assert_eq!(per_episode, [vec![0], vec![1], vec![2], vec![3]]);
    let last = answers.last().and_then(|answer| answer.completion());
    assert_eq!(
        last.map(|done| done.status),
        Some(OrchestrationStatus::Completed)
    );
}

/// Fan-out, fan-in: forty activities scheduled in one episode, awaited with `join_all`
/// (enough of them that `join_all` takes its waker-driven path), and summed.
#[test]
fn fan_out_fan_in_with_join_all() {
    let mut registry = Registry::new();
    registry
        .orchestration(
            "SumSquares",
            |ctx: OrchestrationContext, n: u64| async move {
                let tasks = (1..=n).map(|i| ctx.call_activity::<u64>("Square", i));
                let squares = join_all(tasks).await;
                squares.into_iter().sum::<Result<u64, TaskError>>()
            },
        )
        .expect("a fresh name")
        .activity("Square", |_ctx: ActivityContext, i: u64| async move {
            Ok::<_, ActivityError>(i * i)
        })
        .expect("a fresh name");

    let mut hub = Hub::new(registry);
    hub.start("fan", "SumSquares", json(json!(40)));
    hub.run();

    let fan = hub.instance("fan");
    assert_eq!(
        fan.output,
        json(json!((1..=40u64).map(|i| i * i).sum::<u64>()))
    );
    assert_eq!(
        fan.answers[0].actions.len(),
        40,
        "all scheduled in the first episode"
    );
    let ids: Vec<i32> = scheduled(&fan.history)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, (0..40).collect::<Vec<_>>());
}

/// A durable timer: nothing happens until the clock reaches it, then the orchestration goes
/// on, and its clock reads the time of the episode the timer fired in.
#[test]
fn durable_timer_fires_at_its_time() {
    let mut registry = Registry::new();
    registry
        .orchestration("Nap", |ctx: OrchestrationContext, (): ()| async move {
            ctx.create_timer(Duration::from_secs(3600)).await;
            Ok::<_, TaskError>(ctx.current_utc_datetime().secs)
        })
        .expect("a fresh name");
    let mut hub = Hub::new(registry);
    hub.start("nap", "Nap", None);

    // Phase 1: the timer is armed an hour ahead, and the orchestration waits.
    hub.run();
    let in_an_hour = START.saturating_add(Duration::from_secs(3600));
    assert_eq!(hub.armed_timers(), [in_an_hour]);
    hub.advance(Duration::from_secs(3599));
    hub.run();
    assert_eq!(hub.instance("nap").status, OrchestrationStatus::Running);

    // Phase 2: a second later it fires.
    hub.advance(Duration::from_secs(1));
    hub.run();
    let nap = hub.instance("nap");
    assert_eq!(nap.status, OrchestrationStatus::Completed);
    assert_eq!(nap.output, json(json!(in_an_hour.secs)));
}

fn approval_with_timeout() -> Registry {
    let mut registry = Registry::new();
    registry
        .orchestration("Approval", |ctx: OrchestrationContext, (): ()| async move {
            let approval = ctx.wait_for_external_event::<String>("Approved");
            let timeout = ctx.create_timer(Duration::from_secs(86_400));
            let verdict = match ctx.select2(approval, timeout).await {
                Either::Left((by, _timer)) => format!("approved by {}", by?),
                Either::Right(((), _approval)) => "timed out".to_string(),
            };
            Ok::<_, TaskError>(verdict)
        })
        .expect("a fresh name");
    registry
}

/// An event raced against a timer, won by the event: it arrives (with a name in another
/// case) before the day is over.
#[test]
fn event_beats_timer_when_it_comes_first() {
    let mut hub = Hub::new(approval_with_timeout());
    hub.start("a", "Approval", None);
    hub.run();
    hub.raise("a", "APPROVED", json(json!("Ada")));
    hub.run();
    assert_eq!(hub.instance("a").output, json(json!("approved by Ada")));
}

/// The same race won by the timer: the day passes with no event.
#[test]
fn timer_beats_event_when_it_fires_first() {
    let mut hub = Hub::new(approval_with_timeout());
    hub.start("a", "Approval", None);
    hub.run();
    hub.advance(Duration::from_secs(86_400));
    hub.run();
    assert_eq!(hub.instance("a").output, json(json!("timed out")));
}

/// When both completions arrive in the same episode, the one first in the history wins,
/// whichever argument of `select2` it is.
#[test]
fn race_in_one_episode_goes_to_the_first_in_history() {
    let mut timer_first = Hub::new(approval_with_timeout());
    timer_first.start("a", "Approval", None);
    timer_first.run();
    timer_first.advance(Duration::from_secs(86_400));
    timer_first.raise("a", "Approved", json(json!("Ada")));
    timer_first.run();
    assert_eq!(timer_first.instance("a").output, json(json!("timed out")));

    let mut event_first = Hub::new(approval_with_timeout());
    event_first.start("a", "Approval", None);
    event_first.run();
    event_first.raise("a", "Approved", json(json!("Ada")));
    event_first.advance(Duration::from_secs(86_400));
    event_first.run();
    assert_eq!(
        event_first.instance("a").output,
        json(json!("approved by Ada"))
    );
}

/// Waits two days, then looks at a race between a one-day deadline and an approval: by then
/// both may have completed, and the history's order decides, not the order of the arguments.
fn look_after_two_days() -> Registry {
    let mut registry = Registry::new();
    registry
        .orchestration("LateLook", |ctx: OrchestrationContext, (): ()| async move {
            let approval = ctx.wait_for_external_event::<String>("Approved");
            let deadline = ctx.create_timer(Duration::from_secs(86_400));
            ctx.create_timer(Duration::from_secs(2 * 86_400)).await;
            let verdict = match ctx.select2(deadline, approval).await {
                Either::Left(((), _approval)) => "timed out".to_string(),
                Either::Right((by, _deadline)) => format!("approved by {}", by?),
            };
            Ok::<_, TaskError>(verdict)
        })
        .expect("a fresh name");
    registry
}

/// A race looked at after both tasks completed goes to the one completed first in history.
#[test]
fn race_looked_at_late_goes_to_the_first_in_history() {
    let mut approved_first = Hub::new(look_after_two_days());
    approved_first.start("l", "LateLook", None);
    approved_first.run();
    approved_first.raise("l", "Approved", json(json!("Ada")));
    approved_first.run_with_timers();
    assert_eq!(
        approved_first.instance("l").output,
        json(json!("approved by Ada"))
    );

    let mut deadline_first = Hub::new(look_after_two_days());
    deadline_first.start("l", "LateLook", None);
    deadline_first.run();
    deadline_first.advance(Duration::from_secs(86_400));
    deadline_first.run();
    deadline_first.raise("l", "Approved", json(json!("Ada")));
    deadline_first.run_with_timers();
    assert_eq!(
        deadline_first.instance("l").output,
        json(json!("timed out"))
    );
}

/// Continue-as-new with events carried over: three events raised at once feed three
/// executions, one each, because the ones not consumed go along to the next execution.
#[test]
fn continue_as_new_carries_unconsumed_events_over() {
    let mut registry = Registry::new();
    registry
        .orchestration(
            "Accumulate",
            |ctx: OrchestrationContext, (total, seen): (i64, u32)| async move {
                let add: i64 = ctx.wait_for_external_event("add").await?;
                if seen + 1 == 3 {
                    return Ok::<_, TaskError>(total + add);
                }
                ctx.continue_as_new((total + add, seen + 1)).await
            },
        )
        .expect("a fresh name");
    let mut hub = Hub::new(registry);
    hub.start("acc", "Accumulate", json(json!([0, 0])));
    hub.run();
    for n in [1, 10, 100] {
        hub.raise("acc", "add", json(json!(n)));
    }
    hub.run();

    let acc = hub.instance("acc");
    assert_eq!(acc.status, OrchestrationStatus::Completed);
    assert_eq!(acc.output, json(json!(111)));
    assert_eq!(acc.earlier_executions.len(), 2);
    let first_continue = acc.answers[1].completion().expect("continued as new");
    assert_eq!(first_continue.status, OrchestrationStatus::ContinuedAsNew);
    assert_eq!(first_continue.result, json(json!([1, 1])));
    let carried = kinds(&first_continue.carryover_events, |event| {
        match &event.kind {
            EventKind::EventRaised(raised) => raised.input.clone(),
            _ => None,
        }
    });
    assert_eq!(
        carried,
        [json(json!(10)), json(json!(100))].map(Option::unwrap)
    );
}

/// The custom status is whatever the orchestration last set, episode by episode.
#[test]
fn custom_status_follows_the_orchestration() {
    let mut registry = Registry::new();
    registry
        .orchestration("Steps", |ctx: OrchestrationContext, (): ()| async move {
            ctx.set_custom_status(json!({"step": 1})).expect("JSON");
            let () = ctx.wait_for_external_event("next").await?;
            ctx.set_custom_status("done").expect("JSON");
            Ok::<_, TaskError>(())
        })
        .expect("a fresh name");
    let mut hub = Hub::new(registry);
    hub.start("s", "Steps", None);
    hub.run();
    assert_eq!(hub.instance("s").custom_status, json(json!({"step": 1})));

    hub.raise("s", "next", None);
    hub.run();
    assert_eq!(hub.instance("s").custom_status, json(json!("done")));
}

/// `is_replaying` is true while the code re-runs over history, false once it reaches new
/// events: each step is seen live once, then replayed in every later episode.
#[test]
fn is_replaying_is_true_only_over_history() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let mut registry = Registry::new();
    registry
        .orchestration("Watched", move |ctx: OrchestrationContext, (): ()| {
            let log = log.clone();
            async move {
                for step in 0..3 {
                    let _: String = ctx.call_activity("SayHello", step).await?;
                    log.lock()
                        .expect("no poison")
                        .push((step, ctx.is_replaying()));
                }
                Ok::<_, TaskError>(())
            }
        })
        .expect("a fresh name");
    registry
        .activity("SayHello", |_ctx: ActivityContext, step: u32| async move {
            Ok::<_, ActivityError>(format!("step {step}"))
        })
        .expect("a fresh name");
    let mut hub = Hub::new(registry);
    hub.start("w", "Watched", None);
    hub.run();

    // Each real episode is followed by the hub's replay check, which sees everything replayed.
    let seen = seen.lock().expect("no poison").clone();
    let live: Vec<_> = seen.iter().filter(|(_, replaying)| !replaying).collect();
    assert_eq!(live, [&(0, false), &(1, false), &(2, false)]);
    let episode_two = &seen[..2];
    assert_eq!(
        episode_two,
        [(0, false), (0, true)],
        "live, then the replay check"
    );
    let episode_three = &seen[2..5];
    assert_eq!(episode_three, [(0, true), (1, false), (0, true)]);
}

/// `new_guid` gives the same GUIDs on every replay, and different ones per call.
#[test]
fn new_guid_is_stable_across_replays() {
    let guids = Arc::new(Mutex::new(Vec::new()));
    let log = guids.clone();
    let mut registry = Registry::new();
    registry
        .orchestration("Ids", move |ctx: OrchestrationContext, (): ()| {
            let log = log.clone();
            async move {
                let first = ctx.new_guid();
                log.lock().expect("no poison").push(first.clone());
                let _: String = ctx.call_activity("SayHello", "x").await?;
                let second = ctx.new_guid();
                Ok::<_, TaskError>([first, second])
            }
        })
        .expect("a fresh name");
    say_hello(&mut registry);
    let mut hub = Hub::new(registry);
    hub.start("ids", "Ids", None);
    hub.run();

    let logged = guids.lock().expect("no poison").clone();
    assert!(
        logged.len() >= 3,
        "the first GUID was drawn in every run: {logged:?}"
    );
    assert!(logged.iter().all(|guid| *guid == logged[0]));
    let [first, second]: [String; 2] =
        serde_json::from_str(hub.instance("ids").output.as_deref().expect("an output"))
            .expect("two GUIDs");
    assert_eq!(first, logged[0]);
    assert_ne!(first, second);
}

fn flaky_registry(failures_before_success: u32, policy: RetryPolicy) -> Registry {
    let calls = Arc::new(Mutex::new(0u32));
    let mut registry = Registry::new();
    registry
        .orchestration("Charge", move |ctx: OrchestrationContext, (): ()| {
            let policy = policy.clone();
            async move {
                let receipt: String = ctx.call_activity_with_retry("Flaky", (), policy).await?;
                Ok::<_, TaskError>(receipt)
            }
        })
        .expect("a fresh name")
        .activity("Flaky", move |_ctx: ActivityContext, (): ()| {
            let calls = calls.clone();
            async move {
                let mut calls = calls.lock().expect("no poison");
                *calls += 1;
                if *calls <= failures_before_success {
                    return Err(ActivityError::new(format!("attempt {calls} failed")));
                }
                Ok(format!("paid on attempt {calls}"))
            }
        })
        .expect("a fresh name");
    registry
}

fn backoff_policy() -> RetryPolicy {
    RetryPolicy {
        backoff_coefficient: 2.0,
        ..RetryPolicy::new(3, Duration::from_secs(10))
    }
}

/// A retry policy re-schedules a failed activity after a durable timer, with backoff.
#[test]
fn retry_reschedules_after_a_timer() {
    let mut hub = Hub::new(flaky_registry(2, backoff_policy()));
    hub.start("pay", "Charge", None);
    hub.run_with_timers();

    let pay = hub.instance("pay");
    assert_eq!(pay.output, json(json!("paid on attempt 3")));
    assert_eq!(scheduled(&pay.history).len(), 3);
    let timers = kinds(&pay.history, |event| match &event.kind {
        EventKind::TimerCreated(created) => Some(created.fire_at.secs - START.secs),
        _ => None,
    });
    assert_eq!(timers, [10, 10 + 20], "waits of 10 s, then 20 s");
}

/// After `max_attempts` failures the retry gives up with the last failure.
#[test]
fn retry_gives_up_after_max_attempts() {
    let mut hub = Hub::new(flaky_registry(u32::MAX, backoff_policy()));
    hub.start("pay", "Charge", None);
    hub.run_with_timers();

    let pay = hub.instance("pay");
    assert_eq!(pay.status, OrchestrationStatus::Failed);
    assert_eq!(scheduled(&pay.history).len(), 3);
    let failure = pay.failure.as_ref().expect("failure details");
    assert_eq!(
        failure.error_message,
        "activity 'Flaky' (action 4) failed: attempt 3 failed"
    );
    let cause = failure
        .inner_failure
        .as_deref()
        .expect("the activity's failure");
    assert_eq!(cause.error_message, "attempt 3 failed");
}

/// A retry timeout stops retrying once the next attempt would start too late.
#[test]
fn retry_stops_at_its_timeout() {
    let policy = RetryPolicy {
        retry_timeout: Some(Duration::from_secs(15)),
        ..backoff_policy()
    };
    let mut hub = Hub::new(flaky_registry(u32::MAX, policy));
    hub.start("pay", "Charge", None);
    hub.run_with_timers();

    let pay = hub.instance("pay");
    assert_eq!(pay.status, OrchestrationStatus::Failed);
    assert_eq!(
        scheduled(&pay.history).len(),
        2,
        "the third would start 30 s in"
    );
}

fn parent_and_child() -> Registry {
    let mut registry = Registry::new();
    registry
        .orchestration("Parent", |ctx: OrchestrationContext, (): ()| async move {
            let named: String = ctx.call_sub_orchestration("Child", None, "Tokyo").await?;
            let chosen: String = ctx
                .call_sub_orchestration("Child", Some("my-child"), "Paris")
                .await?;
            let failed = ctx
                .call_sub_orchestration::<String>("Child", None, "")
                .await;
            let error = failed.expect_err("an empty city fails");
            Ok::<_, TaskError>([named, chosen, error.failure.error_message])
        })
        .expect("a fresh name")
        .orchestration(
            "Child",
            |ctx: OrchestrationContext, city: String| async move {
                if city.is_empty() {
                    return Err(ActivityError::new("no city"));
                }
                let id = ctx.instance_id();
                let greeting: String = ctx
                    .call_activity("SayHello", &city)
                    .await
                    .map_err(|e| ActivityError::new(e.to_string()))?;
                Ok(format!("{greeting} from {id}"))
            },
        )
        .expect("a fresh name");
    say_hello(&mut registry);
    registry
}

/// Sub-orchestrations: a default id derived from the parent and the action id, an explicit
/// id, and a failing child whose failure reaches the parent.
#[test]
fn sub_orchestrations_return_results_and_failures() {
    let mut hub = Hub::new(parent_and_child());
    hub.start("p", "Parent", None);
    hub.run();

    let parent = hub.instance("p");
    assert_eq!(parent.status, OrchestrationStatus::Completed);
    let expected = json!([
        "Hello Tokyo! from p:0000",
        "Hello Paris! from my-child",
        "no city"
    ]);
    assert_eq!(parent.output, json(expected));
    assert!(
        hub.instances.contains_key(&id("p:0002")),
        "the failing child, action 2"
    );
    assert_eq!(hub.instance("p:0002").status, OrchestrationStatus::Failed);
}

/// Events sent between instances arrive as raised events.
#[test]
fn send_event_reaches_another_instance() {
    let mut registry = Registry::new();
    registry
        .orchestration("Sender", |ctx: OrchestrationContext, (): ()| async move {
            ctx.send_event("receiver", "Ping", 42).expect("JSON");
            Ok::<_, TaskError>(())
        })
        .expect("a fresh name")
        .orchestration("Receiver", |ctx: OrchestrationContext, (): ()| async move {
            ctx.wait_for_external_event::<u32>("ping").await
        })
        .expect("a fresh name");
    let mut hub = Hub::new(registry);
    hub.start("receiver", "Receiver", None);
    hub.start("sender", "Sender", None);
    hub.run();

    assert_eq!(
        hub.instance("sender").status,
        OrchestrationStatus::Completed
    );
    assert_eq!(hub.instance("receiver").output, json(json!(42)));
}

/// While suspended, results and events wait; on resume they are processed in order.
#[test]
fn suspension_holds_events_until_resumed() {
    let mut registry = Registry::new();
    registry
        .orchestration("Gate", |ctx: OrchestrationContext, (): ()| async move {
            let first: String = ctx.wait_for_external_event("open").await?;
            let second: String = ctx.wait_for_external_event("open").await?;
            Ok::<_, TaskError>(format!("{first}, {second}"))
        })
        .expect("a fresh name");
    let mut hub = Hub::new(registry);
    hub.start("g", "Gate", None);
    hub.run();

    // Phase 1: suspended, two events arrive and change nothing.
    hub.suspend("g");
    hub.raise("g", "open", json(json!("one")));
    hub.run();
    hub.raise("g", "open", json(json!("two")));
    hub.run();
    assert_eq!(hub.instance("g").status, OrchestrationStatus::Suspended);
    assert_eq!(hub.instance("g").output, None);

    // Phase 2: resumed, both are delivered, in order.
    hub.resume("g");
    hub.run();
    assert_eq!(hub.instance("g").output, json(json!("one, two")));
}

/// A terminate request ends the orchestration as Terminated, with the reason as its output,
/// even while it waits for a timer; nothing else is asked for.
#[test]
fn termination_ends_with_the_reason_as_output() {
    let mut hub = Hub::new(approval_with_timeout());
    hub.start("a", "Approval", None);
    hub.run();
    hub.terminate("a", json(json!("cancelled by ops")));
    hub.run();

    let a = hub.instance("a");
    assert_eq!(a.status, OrchestrationStatus::Terminated);
    assert_eq!(a.output, json(json!("cancelled by ops")));
    let last = a.answers.last().expect("an answer");
    assert!(matches!(
        last.actions[..],
        [ref only] if matches!(only.kind, ActionKind::CompleteOrchestration(_))
    ));
}

/// An event that arrives before anyone waits for it is kept for the first waiter of its name.
#[test]
fn early_event_waits_for_its_waiter() {
    let mut registry = Registry::new();
    registry
        .orchestration("Late", |ctx: OrchestrationContext, (): ()| async move {
            ctx.create_timer(Duration::from_secs(60)).await;
            ctx.wait_for_external_event::<String>("Note").await
        })
        .expect("a fresh name");
    let mut hub = Hub::new(registry);
    hub.start("l", "Late", None);
    hub.run();
    hub.raise("l", "note", json(json!("kept")));
    hub.run();
    assert_eq!(hub.instance("l").status, OrchestrationStatus::Running);

    hub.advance(Duration::from_secs(60));
    hub.run();
    assert_eq!(hub.instance("l").output, json(json!("kept")));
}

/// A waiter that lost a race is forgotten: the event it waited for goes to the next waiter
/// instead of vanishing with it.
#[test]
fn event_goes_to_the_next_waiter_after_a_lost_race() {
    let mut registry = Registry::new();
    registry
        .orchestration("Patient", |ctx: OrchestrationContext, (): ()| async move {
            let first = ctx.wait_for_external_event::<String>("Reply");
            let timeout = ctx.create_timer(Duration::from_secs(10));
            if let Either::Left((reply, _)) = ctx.select2(first, timeout).await {
                return Ok(format!("early {}", reply?));
            }
            let reply = ctx.wait_for_external_event::<String>("Reply").await?;
            Ok::<_, TaskError>(format!("late {reply}"))
        })
        .expect("a fresh name");
    let mut hub = Hub::new(registry);
    hub.start("p", "Patient", None);
    hub.run();
    hub.advance(Duration::from_secs(10));
    hub.run();
    hub.raise("p", "Reply", json(json!("hi")));
    hub.run();
    assert_eq!(hub.instance("p").output, json(json!("late hi")));
}

/// `when_any` picks the task completed first in the history, whatever its place in the list,
/// and hands back the others, which can still be awaited.
#[test]
fn when_any_picks_the_earliest_completion() {
    let mut registry = Registry::new();
    registry
        .orchestration("Earliest", |ctx: OrchestrationContext, (): ()| async move {
            let timers = [30, 10, 20].map(|secs| ctx.create_timer(Duration::from_secs(secs)));
            let ((), winner, rest) = ctx.when_any(timers.into()).await;
            let first_done = ctx.current_utc_datetime();
            join_all(rest).await;
            let all_done = ctx.current_utc_datetime();
            Ok::<_, TaskError>((
                winner,
                first_done.secs - START.secs,
                all_done.secs - START.secs,
            ))
        })
        .expect("a fresh name");
    let mut hub = Hub::new(registry);
    hub.start("e", "Earliest", None);
    hub.run_with_timers();
    assert_eq!(hub.instance("e").output, json(json!([1, 10, 30])));
}

fn fan_out_then_sequence() -> Registry {
    let mut registry = Registry::new();
    registry
        .orchestration("Mixed", |ctx: OrchestrationContext, (): ()| async move {
            let squares = (1..=5u64).map(|i| ctx.call_activity::<u64>("Square", i));
            let mut total = join_all(squares)
                .await
                .into_iter()
                .sum::<Result<u64, TaskError>>()?;
            for i in [6u64, 7] {
                total += ctx.call_activity::<u64>("Square", i).await?;
            }
            Ok::<_, TaskError>(total)
        })
        .expect("a fresh name")
        .activity("Square", |_ctx: ActivityContext, i: u64| async move {
            Ok::<_, ActivityError>(i * i)
        })
        .expect("a fresh name");
    registry
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever order the activities run in, and however their results are batched into
    /// episodes, the orchestration computes the same result, and no replay (the hub checks
    /// after every episode) asks for an action twice.
    #[test]
    fn any_result_order_and_batching_gives_the_same_outcome(
        choices in proptest::collection::vec(any::<u8>(), 1..40)
    ) {
        let mut hub = Hub::new(fan_out_then_sequence());
        hub.start("m", "Mixed", None);
        hub.run_in_order(&choices);

        let mixed = hub.instance("m");
        prop_assert_eq!(mixed.status, OrchestrationStatus::Completed);
        prop_assert_eq!(mixed.output.clone(), json(json!((1..=7u64).map(|i| i * i).sum::<u64>())));
        let ids: Vec<i32> = scheduled(&mixed.history).into_iter().map(|(id, _)| id).collect();
        prop_assert_eq!(ids, (0..7).collect::<Vec<_>>());
    }
}

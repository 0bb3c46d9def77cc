"""The application under test: orchestrations, activities and entities written with the SDK.

One registry serves the scenario suite, the benchmark and the crash driver, so that all three
exercise the same code. Functions are registered under their own names (the SDK's default), and
entities under their lowercased names (`counter`, `account`). Nothing here knows which backend
it runs on.

The only process-local state is `_attempts`, which lets `flaky` fail a given number of times
per key, and `slow_calls`, which the crash driver watches; both work because the worker runs in
the same process as the client that reads them.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from durabletask import task
from durabletask.entities import DurableEntity, EntityContext, EntityInstanceId

CITIES = ("Tokyo", "Seattle", "London")
HELLO_OUTPUT = ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]

_attempts: dict[str, int] = {}
_attempts_lock = threading.Lock()

slow_calls = 0
"""How many times `say_hello_slowly` has started in this process (the crash driver's clock)."""
_slow_calls_lock = threading.Lock()


# ---- activities ----------------------------------------------------------------------------


def say_hello(ctx: task.ActivityContext, city: str) -> str:
    return f"Hello {city}!"


def say_hello_slowly(ctx: task.ActivityContext, args: dict) -> str:
    """`say_hello` after `args["sleep"]` seconds, so that work is in flight for a while."""
    global slow_calls
    with _slow_calls_lock:
        slow_calls += 1
    time.sleep(args["sleep"])
    return f"Hello {args['city']}!"


def square(ctx: task.ActivityContext, n: int) -> int:
    return n * n


def flaky(ctx: task.ActivityContext, spec: dict) -> int:
    """Fails the first `spec["fail_times"]` calls for `spec["key"]`, then returns the attempt."""
    with _attempts_lock:
        attempt = _attempts.get(spec["key"], 0) + 1
        _attempts[spec["key"]] = attempt
    if attempt <= spec["fail_times"]:
        raise RuntimeError(f"attempt {attempt} of {spec['key']} fails on purpose")
    return attempt


def attempts_of(key: str) -> int:
    """How many times `flaky` has run for `key` in this process."""
    with _attempts_lock:
        return _attempts.get(key, 0)


def always_fails(ctx: task.ActivityContext, message: str) -> None:
    raise ValueError(message)


# ---- orchestrations ------------------------------------------------------------------------


def hello_sequence(ctx: task.OrchestrationContext, _: None):
    """Three chained activities; the canonical first workflow."""
    greetings = []
    for city in CITIES:
        greetings.append((yield ctx.call_activity(say_hello, input=city)))
    return greetings


def slow_hello_sequence(ctx: task.OrchestrationContext, sleep: float):
    """`hello_sequence` with activities that take `sleep` seconds each."""
    greetings = []
    for city in CITIES:
        args = {"city": city, "sleep": sleep}
        greetings.append((yield ctx.call_activity(say_hello_slowly, input=args)))
    return greetings


def fan_out_fan_in(ctx: task.OrchestrationContext, n: int):
    """Squares 1..n in parallel activities and adds the results up."""
    tasks = [ctx.call_activity(square, input=i) for i in range(1, n + 1)]
    results = yield task.when_all(tasks)
    return {"count": len(results), "sum": sum(results)}


def greet_city(ctx: task.OrchestrationContext, city: str):
    return (yield ctx.call_activity(say_hello, input=city))


def greet_cities(ctx: task.OrchestrationContext, cities: list[str]):
    """One `greet_city` sub-orchestration per city, with ids derived from the parent's."""
    children = [
        ctx.call_sub_orchestrator(greet_city, input=city, instance_id=f"{ctx.instance_id}:{i}")
        for i, city in enumerate(cities)
    ]
    return (yield task.when_all(children))


def timed_wait(ctx: task.OrchestrationContext, seconds: float):
    """Sleeps on a durable timer; returns how far the orchestration clock moved."""
    before = ctx.current_utc_datetime
    yield ctx.create_timer(timedelta(seconds=seconds))
    return (ctx.current_utc_datetime - before).total_seconds()


def approval(ctx: task.OrchestrationContext, timeout_seconds: float):
    """Waits for an `approval` event, or gives up when a timer fires first."""
    event = ctx.wait_for_external_event("approval")
    timeout = ctx.create_timer(timedelta(seconds=timeout_seconds))
    winner = yield task.when_any([event, timeout])
    if winner is event:
        return {"outcome": "approved", "by": event.get_result()}
    return {"outcome": "timed out"}


def wait_for_go(ctx: task.OrchestrationContext, _: None):
    return {"go": (yield ctx.wait_for_external_event("go"))}


def wait_forever(ctx: task.OrchestrationContext, _: None):
    yield ctx.wait_for_external_event("never-raised")
    return "unreachable"


def parent_of_waiter(ctx: task.OrchestrationContext, _: None):
    """Starts a child that never finishes, at the id `<own id>:child`."""
    yield ctx.call_sub_orchestrator(wait_forever, instance_id=f"{ctx.instance_id}:child")
    return "unreachable"


def counting_loop(ctx: task.OrchestrationContext, state: dict):
    """Continues as new until `n` reaches `target`, summing squares on the way."""
    n, target, total = state["n"], state["target"], state["sum"]
    if n >= target:
        return {"n": n, "sum": total}
    squared = yield ctx.call_activity(square, input=n)
    ctx.continue_as_new({"n": n + 1, "target": target, "sum": total + squared})


def status_reporter(ctx: task.OrchestrationContext, _: None):
    ctx.set_custom_status({"stage": "waiting"})
    yield ctx.wait_for_external_event("proceed")
    ctx.set_custom_status({"stage": "done"})
    return "finished"


def retrying(ctx: task.OrchestrationContext, spec: dict):
    """Calls `flaky` under a retry policy with `spec["max_attempts"]` attempts."""
    policy = task.RetryPolicy(
        first_retry_interval=timedelta(seconds=0.5),
        max_number_of_attempts=spec["max_attempts"],
        backoff_coefficient=1.0,
    )
    return (yield ctx.call_activity(flaky, input=spec, retry_policy=policy))


def failing(ctx: task.OrchestrationContext, message: str):
    """Lets an activity's exception escape, so the orchestration fails."""
    return (yield ctx.call_activity(always_fails, input=message))


def catching(ctx: task.OrchestrationContext, message: str):
    """Catches an activity's exception and returns what the SDK says about it."""
    try:
        yield ctx.call_activity(always_fails, input=message)
    except task.TaskFailedError as error:
        return {"type": error.details.error_type, "message": error.details.message}
    return "not raised"


def echo(ctx: task.OrchestrationContext, value):
    return value


def counter_user(ctx: task.OrchestrationContext, key: str):
    """Signals, then calls, the `counter` entity `key`; per-entity FIFO orders the two."""
    entity = EntityInstanceId("counter", key)
    ctx.signal_entity(entity, "add", 1)
    after_add = yield ctx.call_entity(entity, "add", 10)
    current = yield ctx.call_entity(entity, "get")
    return {"after_add": after_add, "get": current}


def transfer(ctx: task.OrchestrationContext, spec: dict):
    """Moves `amount` between two accounts by read-modify-write inside a critical section.

    The reads and writes are separate calls, so without the lock concurrent transfers would lose
    updates; the final balances show whether the locks serialized them.
    """
    source = EntityInstanceId("account", spec["from"])
    target = EntityInstanceId("account", spec["to"])
    with (yield ctx.lock_entities([source, target])):
        source_balance = yield ctx.call_entity(source, "balance")
        target_balance = yield ctx.call_entity(target, "balance")
        yield ctx.call_entity(source, "set", source_balance - spec["amount"])
        yield ctx.call_entity(target, "set", target_balance + spec["amount"])
    return "moved"


def rewindable(ctx: task.OrchestrationContext, spec: dict):
    """Greets, then calls `flaky` with no retry policy: the first failure fails the instance.

    After a rewind only the failed call runs again; the greeting is taken from the history.
    """
    greeting = yield ctx.call_activity(say_hello, input=spec["city"])
    attempt = yield ctx.call_activity(flaky, input=spec)
    return {"greeting": greeting, "attempt": attempt}


def lock_until_released(ctx: task.OrchestrationContext, key: str):
    """Locks the `counter` entity `key`, says so in its custom status, and keeps the lock until
    a `release` event arrives.

    Terminating it inside the critical section does not strand the lock: the SDK (1.12.0)
    emits the unlock messages whenever an orchestration ends inside a critical section.
    """
    with (yield ctx.lock_entities([EntityInstanceId("counter", key)])):
        ctx.set_custom_status("holding the lock")
        yield ctx.wait_for_external_event("release")
    return "released"


def locked_add(ctx: task.OrchestrationContext, key: str):
    """Adds 1 to the `counter` entity `key` inside a critical section; returns the new value."""
    entity = EntityInstanceId("counter", key)
    with (yield ctx.lock_entities([entity])):
        value = yield ctx.call_entity(entity, "add", 1)
    return value


# ---- entities ------------------------------------------------------------------------------


def counter(ctx: EntityContext, amount):
    """A function-style entity holding an integer: `add`, `get`, `delete`."""
    value = ctx.get_state(int, 0)
    if ctx.operation == "add":
        value += amount
        ctx.set_state(value)
        return value
    if ctx.operation == "get":
        return value
    if ctx.operation == "delete":
        ctx.set_state(None)
        return None
    raise ValueError(f"counter has no operation {ctx.operation!r}")


class Account(DurableEntity):
    """A class-style entity holding a balance."""

    def balance(self) -> int:
        return self.get_state(int, 0)

    def set(self, value: int) -> int:
        self.set_state(value)
        return value

    def deposit(self, amount: int) -> int:
        return self.set(self.balance() + amount)


ORCHESTRATORS = (
    hello_sequence, slow_hello_sequence, fan_out_fan_in, greet_city, greet_cities, timed_wait,
    approval, wait_for_go, wait_forever, parent_of_waiter, counting_loop, status_reporter,
    retrying, failing, catching, echo, counter_user, transfer, rewindable,
    lock_until_released, locked_add,
)
ACTIVITIES = (say_hello, say_hello_slowly, square, flaky, always_fails)
ENTITIES = (counter, Account)


def register(worker) -> None:
    """Adds every orchestrator, activity and entity above to `worker`."""
    for orchestrator in ORCHESTRATORS:
        worker.add_orchestrator(orchestrator)
    for activity in ACTIVITIES:
        worker.add_activity(activity)
    for entity in ENTITIES:
        worker.add_entity(entity)

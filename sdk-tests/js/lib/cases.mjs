// The scenarios. Each one drives the orchestrations of app.mjs through the SDK's client and
// checks outputs and runtime statuses; the comment above each says what it shows.
//
// `env` carries the client, the wait budget in seconds and `id(label)`, which makes an instance
// id unique to this run and scenario.

import { HELLO_CITIES, COUNTER } from "./app.mjs";
import { assert, eventually, expectStatus, finished, outputOf, reachesStatus, running, sleep }
  from "./checks.mjs";
import { sdk } from "./sdk.mjs";

const { EntityInstanceId, OrchestrationStatus } = sdk;

const TIMER_SECONDS = 2;
const QUERY_INSTANCES = 5;
const QUERY_PAGE_SIZE = 2;
const QUERY_PAGES_MAX = 20;
// Whole-millisecond timestamps on both sides may round the measured span down by a little.
const TIMESTAMP_SLACK_MS = 5;

async function start(env, name, input, label = name) {
  const instanceId = env.id(label);
  const returned = await env.client.scheduleNewOrchestration(name, input, instanceId);
  assert.equal(returned, instanceId, "StartInstance must return the id the client chose");
  return instanceId;
}

/** Three chained activities run in order and their results come back as one array. */
async function helloSequence(env) {
  const id = await start(env, "HelloSequence");
  const state = await finished(env, id);

  assert.deepEqual(outputOf(state), HELLO_CITIES.map((city) => `Hello ${city}!`));
  assert.equal(state.name, "HelloSequence");
}

/** Ten activities scheduled in one episode all complete, and whenAll keeps their order. */
async function fanOutFanIn(env) {
  const id = await start(env, "FanOutFanIn", 10);
  const output = outputOf(await finished(env, id));

  assert.deepEqual(output.squares, [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]);
  assert.equal(output.sum, 385);
}

/** Sub-orchestrations run to completion, know their parent, and keep the id they were given. */
async function subOrchestration(env) {
  const childId = env.id("child");
  const id = await start(env, "Parent", { n: 3, childId });
  const { named, derived } = outputOf(await finished(env, id));

  assert.equal(named.instanceId, childId);
  assert.deepEqual([named.squared, derived.squared], [9, 16]);
  assert.notEqual(derived.instanceId, childId, "the derived child id must differ");

  // Both children are instances of their own, finished.
  for (const childInstance of [childId, derived.instanceId]) {
    const state = await env.client.getOrchestrationState(childInstance);
    expectStatus(state, OrchestrationStatus.COMPLETED, childInstance);
  }

  // ExecutionStarted.parentInstance reached both children.
  assert.deepEqual([named.parent, derived.parent], [id, id], "parent seen by the children");
}

/** A durable timer does not fire early: by wall clock, orchestration time and timestamps. */
async function durableTimer(env) {
  const delayMs = TIMER_SECONDS * 1000;
  const startedAt = Date.now();
  const id = await start(env, "Sleeper", TIMER_SECONDS);
  const state = await finished(env, id);
  const wallMs = Date.now() - startedAt;

  const { before, after } = outputOf(state);
  assert.ok(wallMs >= delayMs, `finished after ${wallMs} ms of wall time, timer is ${delayMs} ms`);
  assert.ok(after - before >= delayMs, `orchestration time moved ${after - before} ms only`);
  const firstEpisode = new Date(before).toISOString();
  assert.ok(before > Date.parse("2020-01-01"), `first episode is dated ${firstEpisode}`);
  const spanMs = state.lastUpdatedAt - state.createdAt;
  assert.ok(spanMs >= delayMs - TIMESTAMP_SLACK_MS, `createdAt..lastUpdatedAt is ${spanMs} ms`);
}

/** An event raised by the client reaches the orchestration waiting for it, payload intact. */
async function externalEvent(env) {
  const id = await start(env, "AwaitApproval");
  await running(env, id);
  await env.client.raiseOrchestrationEvent(id, "approval", { by: "alice", ok: true });

  assert.deepEqual(outputOf(await finished(env, id)), { approval: { by: "alice", ok: true } });
}

/** With no event, the timer wins the race, and not before its delay. */
async function externalEventTimesOut(env) {
  const startedAt = Date.now();
  const id = await start(env, "ApprovalWithTimeout", TIMER_SECONDS);
  const output = outputOf(await finished(env, id));
  const wallMs = Date.now() - startedAt;

  assert.deepEqual(output, { timedOut: true });
  assert.ok(wallMs >= TIMER_SECONDS * 1000, `timed out after ${wallMs} ms of wall time`);
}

/** An event that arrives first wins the race against a long timer, which then does not matter. */
async function externalEventBeatsTimeout(env) {
  const longTimerSeconds = 300;
  const id = await start(env, "ApprovalWithTimeout", longTimerSeconds);
  await running(env, id);
  await env.client.raiseOrchestrationEvent(id, "approval", "granted");

  assert.deepEqual(outputOf(await finished(env, id)), { approval: "granted" });
}

/** A suspended instance reports SUSPENDED, holds a raised event until resumed, then finishes. */
async function suspendResume(env) {
  const id = await start(env, "AwaitApproval");
  await running(env, id);

  await env.client.suspendOrchestration(id);
  await reachesStatus(env, id, OrchestrationStatus.SUSPENDED);
  await env.client.raiseOrchestrationEvent(id, "approval", "while suspended");
  await sleep(1000);
  const held = await env.client.getOrchestrationState(id);
  expectStatus(held, OrchestrationStatus.SUSPENDED, id);

  await env.client.resumeOrchestration(id);
  assert.deepEqual(outputOf(await finished(env, id)), { approval: "while suspended" });
}

/** Terminating a waiting instance ends it as TERMINATED with the output the client gave. */
async function terminate(env) {
  const id = await start(env, "AwaitApproval");
  await running(env, id);
  await env.client.terminateOrchestration(id, "stopped by test");

  const state = await finished(env, id, OrchestrationStatus.TERMINATED);
  assert.equal(outputOf(state), "stopped by test");
}

/** Continue-as-new restarts the instance with new input until it returns, keeping its id. */
async function continueAsNew(env) {
  const id = await start(env, "CountUp", { value: 0, target: 5 });
  const state = await finished(env, id);

  assert.deepEqual(outputOf(state), { value: 5 });
  assert.deepEqual(JSON.parse(state.serializedInput), { value: 5, target: 5 });
}

/** The custom status an orchestration sets is visible while it runs and after it ends. */
async function customStatus(env) {
  const id = await start(env, "WithCustomStatus");
  const waiting = await eventually(env, "custom status 'waiting'", async () => {
    const state = await env.client.getOrchestrationState(id, true);
    return state?.serializedCustomStatus ? state : undefined;
  });
  assert.deepEqual(JSON.parse(waiting.serializedCustomStatus), { stage: "waiting" });
  expectStatus(waiting, OrchestrationStatus.RUNNING, id);

  await env.client.raiseOrchestrationEvent(id, "proceed", "bob");
  const done = await finished(env, id);
  assert.equal(outputOf(done), "finished");
  assert.deepEqual(JSON.parse(done.serializedCustomStatus), { stage: "done", by: "bob" });
}

/** Purge deletes a finished instance and leaves a running one alone. */
async function purge(env) {
  const busy = await start(env, "AwaitApproval", undefined, "purge-running");
  await running(env, busy);
  const kept = await env.client.purgeOrchestration(busy);
  assert.equal(kept?.deletedInstanceCount, 0, "a running instance must not be purged");
  expectStatus(await env.client.getOrchestrationState(busy), OrchestrationStatus.RUNNING, busy);

  await env.client.terminateOrchestration(busy, "done");
  await finished(env, busy, OrchestrationStatus.TERMINATED);
  const done = await start(env, "HelloSequence", undefined, "purge-done");
  await finished(env, done);

  for (const id of [busy, done]) {
    const result = await env.client.purgeOrchestration(id);
    assert.equal(result?.deletedInstanceCount, 1, `purge of ${id}`);
    assert.equal(await env.client.getOrchestrationState(id), undefined, `${id} after purge`);
  }
}

/** A prefix query pages through exactly this run's instances, with inputs when asked. */
async function queryPaging(env) {
  const ids = [];
  for (let i = 0; i < QUERY_INSTANCES; i++) {
    ids.push(await start(env, "EchoThroughActivity", { i }, `query-${i}`));
  }
  for (const id of ids) await finished(env, id);

  const prefix = env.id("query-");
  const filter = {
    instanceIdPrefix: prefix,
    pageSize: QUERY_PAGE_SIZE,
    fetchInputsAndOutputs: true,
  };
  const pages = await collectPages(env.client.getAllInstances(filter));
  const seen = pages.flatMap((page) => page.values);

  assert.ok(pages.length >= Math.ceil(QUERY_INSTANCES / QUERY_PAGE_SIZE), `${pages.length} pages`);
  for (const page of pages) assert.ok(page.values.length <= QUERY_PAGE_SIZE, "page too large");
  assert.deepEqual(seen.map((s) => s.instanceId).sort(), [...ids].sort());
  for (const state of seen) {
    expectStatus(state, OrchestrationStatus.COMPLETED, state.instanceId);
    assert.equal(state.serializedOutput, state.serializedInput, `${state.instanceId} echoes input`);
  }

  const none = await collectPages(env.client.getAllInstances({
    instanceIdPrefix: prefix, statuses: [OrchestrationStatus.RUNNING],
  }));
  assert.equal(none.flatMap((page) => page.values).length, 0, "no instance of the prefix runs");
}

async function collectPages(pageable) {
  const pages = [];
  for await (const page of pageable.asPages()) {
    pages.push(page);
    assert.ok(pages.length <= QUERY_PAGES_MAX, "the continuation token never ends");
  }
  return pages;
}

/** An activity that throws fails the orchestration, with the error in the failure details. */
async function activityFailure(env) {
  const id = await start(env, "FailingActivity", "boom from activity");
  const state = await finished(env, id, OrchestrationStatus.FAILED);

  assert.ok(state.failureDetails, "a failed instance has failure details");
  assert.match(state.failureDetails.message, /boom from activity/);
}

/** An orchestration can catch an activity's failure and still complete. */
async function activityFailureCaught(env) {
  const id = await start(env, "CaughtActivityFailure", "caught boom");
  const output = outputOf(await finished(env, id));

  assert.equal(output.caught, true);
  assert.equal(output.errorType, "Error");
  assert.match(output.message, /caught boom/);
}

function counterId(env, label) {
  return new EntityInstanceId(COUNTER, env.id(label));
}

async function counterValue(env, entity) {
  const metadata = await env.client.getEntity(entity, true);
  return metadata?.includesState ? metadata.state : undefined;
}

async function counterReaches(env, entity, want) {
  return eventually(env, `${entity} to hold ${want}`, async () => (
    (await counterValue(env, entity)) === want
  ));
}

/** Signals from the client are applied in order, and the state is readable. */
async function entitySignal(env) {
  const entity = counterId(env, "signal");
  assert.equal(await env.client.getEntity(entity), undefined, "a new entity does not exist yet");

  for (const amount of [1, 2, 3]) await env.client.signalEntity(entity, "add", amount);
  await counterReaches(env, entity, 6);

  // add, then set: a backend that reordered them would end at 14 instead of 10.
  await env.client.signalEntity(entity, "add", 4);
  await env.client.signalEntity(entity, "set", 10);
  await counterReaches(env, entity, 10);
}

/** The implicit "delete" operation removes the state, and then the entity no longer exists. */
async function entityDelete(env) {
  const entity = counterId(env, "delete");
  await env.client.signalEntity(entity, "set", 1);
  await counterReaches(env, entity, 1);

  await env.client.signalEntity(entity, "delete");
  await eventually(env, `${entity} to stop existing`, async () => (
    (await env.client.getEntity(entity)) === undefined
  ));
}

/** An orchestration calls an entity and gets each result; its signal lands before its next call. */
async function entityCall(env) {
  const key = env.id("call");
  const id = await start(env, "CounterCaller", key);

  assert.deepEqual(outputOf(await finished(env, id)), { afterFirst: 5, final: 107 });
  assert.equal(await counterValue(env, new EntityInstanceId(COUNTER, key)), 107);
}

/** Two orchestrations doing read-modify-write under a lock lose no update. */
async function entityLock(env) {
  const key = env.id("lock");
  const times = 3;
  const ids = [
    await start(env, "LockedIncrements", { key, times }, "lock-a"),
    await start(env, "LockedIncrements", { key, times }, "lock-b"),
  ];

  for (const id of ids) {
    const output = outputOf(await finished(env, id));
    assert.deepEqual(output, { sawSection: true, inSectionAfter: false });
  }
  assert.equal(await counterValue(env, new EntityInstanceId(COUNTER, key)), 2 * times);
}

/** A lock on two entities is granted on both; calls inside it update both. */
async function entityLockTwo(env) {
  const from = counterId(env, "from");
  const to = counterId(env, "to");
  await env.client.signalEntity(from, "set", 50);
  await counterReaches(env, from, 50);

  const id = await start(env, "Transfer", { from: from.key, to: to.key, amount: 20 });
  const { locked } = outputOf(await finished(env, id));

  assert.deepEqual(locked, [from.toString(), to.toString()].sort());
  assert.equal(await counterValue(env, from), 30);
  assert.equal(await counterValue(env, to), 20);
}

/** Every scenario, in the order they run. `name` is what --only matches. */
export const SCENARIOS = [
  { name: "hello-sequence", run: helloSequence },
  { name: "fan-out-fan-in", run: fanOutFanIn },
  { name: "sub-orchestration", run: subOrchestration },
  { name: "durable-timer", run: durableTimer },
  { name: "external-event", run: externalEvent },
  { name: "external-event-timeout", run: externalEventTimesOut },
  { name: "external-event-beats-timeout", run: externalEventBeatsTimeout },
  { name: "suspend-resume", run: suspendResume },
  { name: "terminate", run: terminate },
  { name: "continue-as-new", run: continueAsNew },
  { name: "custom-status", run: customStatus },
  { name: "purge", run: purge },
  { name: "query-paging", run: queryPaging },
  { name: "activity-failure", run: activityFailure },
  { name: "activity-failure-caught", run: activityFailureCaught },
  { name: "entity-signal", run: entitySignal },
  { name: "entity-delete", run: entityDelete },
  { name: "entity-call", run: entityCall },
  { name: "entity-lock", run: entityLock },
  { name: "entity-lock-two", run: entityLockTwo },
];

// The "application" the scenarios run: orchestrators, activities and one entity, written the
// way a user of the JS SDK would write them, and registered on a worker under fixed names.
//
// Orchestrators are async generators: 0.4.0 drives only those, and takes whatever a plain
// generator function returns (the generator object itself) as the output.
//
// Each orchestrator returns enough of what it saw (times, ids, which task won a race) for a
// scenario to check the backend's behaviour from the output alone.

import { sdk } from "./sdk.mjs";

const { EntityInstanceId, TaskEntity, whenAll, whenAny } = sdk;

export const HELLO_CITIES = ["Tokyo", "Seattle", "London"];
export const COUNTER = "counter";
const CONTINUE_TARGET_DEFAULT = 5;

// ---- activities ----

function sayHello(_ctx, city) {
  return `Hello ${city}!`;
}

function square(_ctx, n) {
  return n * n;
}

async function echo(_ctx, value) {
  return value;
}

function fail(_ctx, message) {
  throw new Error(message);
}

// ---- orchestrators ----

/** Three activities one after the other, each result collected in order. */
async function* helloSequence(ctx) {
  const greetings = [];
  for (const city of HELLO_CITIES) {
    greetings.push(yield ctx.callActivity("SayHello", city));
  }
  return greetings;
}

/** `count` activities scheduled at once, then their results summed. */
async function* fanOutFanIn(ctx, count) {
  const tasks = [];
  for (let n = 1; n <= count; n++) tasks.push(ctx.callActivity("Square", n));
  const squares = yield whenAll(tasks);
  return { squares, sum: squares.reduce((a, b) => a + b, 0) };
}

/** One child with an id the caller chose, one with the id the SDK derives. */
async function* parent(ctx, input) {
  const named = yield ctx.callSubOrchestrator("Child", input.n, { instanceId: input.childId });
  const derived = yield ctx.callSubOrchestrator("Child", input.n + 1);
  return { named, derived };
}

/** A child that reports who its parent is and does one activity. */
async function* child(ctx, n) {
  const squared = yield ctx.callActivity("Square", n);
  return { instanceId: ctx.instanceId, parent: ctx.parent?.instanceId ?? null, squared };
}

/** Sleeps on a durable timer and reports the orchestration time before and after. */
async function* sleeper(ctx, seconds) {
  const before = ctx.currentUtcDateTime.getTime();
  yield ctx.createTimer(seconds);
  const after = ctx.currentUtcDateTime.getTime();
  return { before, after };
}

/** Waits for the "approval" event and returns its payload. */
async function* awaitApproval(ctx) {
  const approval = yield ctx.waitForExternalEvent("approval");
  return { approval };
}

/** Races the "approval" event against a timer of `seconds`. */
async function* approvalWithTimeout(ctx, seconds) {
  const approval = ctx.waitForExternalEvent("approval");
  const timeout = ctx.createTimer(seconds);
  const winner = yield whenAny([approval, timeout]);
  if (winner === approval) return { approval: approval.getResult() };
  return { timedOut: true };
}

/** Continues as new, adding one each generation, until it reaches `target`. */
async function* countUp(ctx, state) {
  const { value, target = CONTINUE_TARGET_DEFAULT } = state;
  if (value < target) {
    ctx.continueAsNew({ value: value + 1, target }, false);
    return undefined;
  }
  return { value };
}

/** Shows progress in the custom status while it waits for "proceed". */
async function* withCustomStatus(ctx) {
  ctx.setCustomStatus({ stage: "waiting" });
  const by = yield ctx.waitForExternalEvent("proceed");
  ctx.setCustomStatus({ stage: "done", by });
  return "finished";
}

/** Returns its input through an activity. */
async function* echoThroughActivity(ctx, value) {
  return yield ctx.callActivity("Echo", value);
}

/** Calls an activity that throws, and does not catch. */
async function* failingActivity(ctx, message) {
  yield ctx.callActivity("Fail", message);
  return "unreachable";
}

/** Calls an activity that throws, and turns the failure into output. */
async function* caughtActivityFailure(ctx, message) {
  try {
    yield ctx.callActivity("Fail", message);
    return { caught: false };
  } catch (e) {
    return { caught: true, errorType: e.details?.errorType, message: e.details?.message };
  }
}

// ---- entity orchestrators ----

/** Calls the counter twice, signals it once, then reads it back with a call. */
async function* counterCaller(ctx, key) {
  const id = new EntityInstanceId(COUNTER, key);
  const afterFirst = yield ctx.entities.callEntity(id, "add", 5);
  yield ctx.entities.callEntity(id, "add", 2);
  ctx.entities.signalEntity(id, "add", 100);
  const final = yield ctx.entities.callEntity(id, "get");
  return { afterFirst, final };
}

/** Read-modify-write of one counter, `times` times, each time inside a lock. */
async function* lockedIncrements(ctx, { key, times }) {
  const id = new EntityInstanceId(COUNTER, key);
  let sawSection = true;
  for (let i = 0; i < times; i++) {
    const lock = yield ctx.entities.lockEntities(id);
    sawSection &&= ctx.entities.isInCriticalSection().inSection;
    const value = yield ctx.entities.callEntity(id, "get");
    yield ctx.entities.callEntity(id, "set", value + 1);
    lock.release();
  }
  return { sawSection, inSectionAfter: ctx.entities.isInCriticalSection().inSection };
}

/** Moves `amount` between two counters while holding a lock on both. */
async function* transfer(ctx, { from, to, amount }) {
  const source = new EntityInstanceId(COUNTER, from);
  const target = new EntityInstanceId(COUNTER, to);
  const lock = yield ctx.entities.lockEntities(target, source);
  const locked = ctx.entities.isInCriticalSection().lockedEntities.map(String);
  yield ctx.entities.callEntity(source, "add", -amount);
  yield ctx.entities.callEntity(target, "add", amount);
  lock.release();
  return { locked };
}

// ---- entity ----

/** A number that can be added to, read and overwritten. */
class Counter extends TaskEntity {
  initializeState() {
    return 0;
  }

  add(amount) {
    this.state += amount;
    return this.state;
  }

  get() {
    return this.state;
  }

  set(value) {
    this.state = value;
  }
}

const ACTIVITIES = { SayHello: sayHello, Square: square, Echo: echo, Fail: fail };

const ORCHESTRATORS = {
  HelloSequence: helloSequence,
  FanOutFanIn: fanOutFanIn,
  Parent: parent,
  Child: child,
  Sleeper: sleeper,
  AwaitApproval: awaitApproval,
  ApprovalWithTimeout: approvalWithTimeout,
  CountUp: countUp,
  WithCustomStatus: withCustomStatus,
  EchoThroughActivity: echoThroughActivity,
  FailingActivity: failingActivity,
  CaughtActivityFailure: caughtActivityFailure,
  CounterCaller: counterCaller,
  LockedIncrements: lockedIncrements,
  Transfer: transfer,
};

/** Registers everything above on `worker`, under the names the scenarios use. */
export function register(worker) {
  for (const [name, fn] of Object.entries(ACTIVITIES)) worker.addNamedActivity(name, fn);
  for (const [name, fn] of Object.entries(ORCHESTRATORS)) worker.addNamedOrchestrator(name, fn);
  worker.addNamedEntity(COUNTER, () => new Counter());
}

// Assertions and waits shared by the scenarios. Every failure message names the instance and
// what was expected, so a failed run can be read without a debugger.

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";

import { sdk } from "./sdk.mjs";

const { OrchestrationStatus } = sdk;

const POLL_INTERVAL_MS = 100;

export { assert, sleep };

/** The name of a runtime status, for messages ("COMPLETED" rather than 1). */
export function statusName(status) {
  return OrchestrationStatus[status] ?? `status ${status}`;
}

/** Fails unless `state` exists and has runtime status `want`. */
export function expectStatus(state, want, instanceId) {
  assert.ok(state, `instance ${instanceId} not found`);
  assert.equal(
    statusName(state.runtimeStatus),
    statusName(want),
    `runtime status of ${instanceId}` + failureText(state),
  );
}

function failureText(state) {
  const failure = state.failureDetails;
  return failure ? ` (failure: ${failure.errorType}: ${failure.message})` : "";
}

/** The parsed output of a finished instance. */
export function outputOf(state) {
  assert.ok(state.serializedOutput !== undefined, `instance ${state.instanceId} has no output`);
  return JSON.parse(state.serializedOutput);
}

/** Waits for `instanceId` to finish, checks its status, and returns its state. */
export async function finished(env, instanceId, status = OrchestrationStatus.COMPLETED) {
  const state = await env.client.waitForOrchestrationCompletion(instanceId, true, env.waitSeconds);
  expectStatus(state, status, instanceId);
  return state;
}

/** Waits for `instanceId` to leave PENDING and checks that it is RUNNING. */
export async function running(env, instanceId) {
  const state = await env.client.waitForOrchestrationStart(instanceId, false, env.waitSeconds);
  expectStatus(state, OrchestrationStatus.RUNNING, instanceId);
  return state;
}

/** Polls `probe` until it returns a truthy value, which is returned; fails after `what`. */
export async function eventually(env, what, probe) {
  const deadline = Date.now() + env.waitSeconds * 1000;
  let last;
  while (Date.now() < deadline) {
    last = await probe();
    if (last) return last;
    await sleep(POLL_INTERVAL_MS);
  }
  assert.fail(`timed out after ${env.waitSeconds}s waiting for ${what}`);
}

/** Polls the instance until its runtime status is `status`. */
export async function reachesStatus(env, instanceId, status) {
  return eventually(env, `${instanceId} to be ${statusName(status)}`, async () => {
    const state = await env.client.getOrchestrationState(instanceId, true);
    return state?.runtimeStatus === status ? state : undefined;
  });
}

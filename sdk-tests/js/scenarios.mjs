#!/usr/bin/env node
// Runs the Durable Task JavaScript SDK scenarios against a TaskHubSidecarService endpoint
// (`netherite serve`), with one TaskHubGrpcWorker and one TaskHubGrpcClient.
//
// The scenarios run one after the other, so a failure's log lines belong to it alone. The run
// ends with the line `N passed, N failed` and exits non-zero if any failed. See README.md.

import { parseArgs } from "node:util";
import { randomBytes } from "node:crypto";

import { register } from "./lib/app.mjs";
import { SCENARIOS } from "./lib/cases.mjs";
import { RpcTrace, omitUnscheduledStart, waitDeadline } from "./lib/interceptors.mjs";
import { SDK_VERSION_PINNED, grpc, sdk, sdkDir, sdkVersion } from "./lib/sdk.mjs";

const ADDRESS_DEFAULT = "127.0.0.1:4001";
const WAIT_SECONDS_DEFAULT = 30;
// A scenario waits a few times in a row; its own budget covers that many waits.
const WAITS_PER_SCENARIO = 4;
const CONNECT_SECONDS_DEFAULT = 30;
const WORKER_STOP_MS = 2000;

const USAGE = `usage: node scenarios.mjs [options]
  --address HOST:PORT        sidecar to test (default $NETHERITE_ADDRESS, else ${ADDRESS_DEFAULT})
  --only NAME[,NAME...]      run only scenarios whose name contains one of these
  --list                     print the scenario names and exit
  --timeout SECONDS          budget of each wait (default ${WAIT_SECONDS_DEFAULT}); a scenario
                             gets ${WAITS_PER_SCENARIO} times that
  --connect-timeout SECONDS  how long the sidecar may take to accept connections
                             (default ${CONNECT_SECONDS_DEFAULT})
  --trace-rpcs               print a JSON summary of the RPCs the SDK made, on stderr
  --verbose                  let the SDK log to the console
 validation only, for backends with known bugs (see README.md):
  --wait-deadline SECONDS    give WaitForInstanceStart/Completion a gRPC deadline
  --omit-unscheduled-start   drop the epoch-0 scheduledStartTimestamp from StartInstance`;

function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      address: { type: "string" },
      only: { type: "string" },
      list: { type: "boolean" },
      timeout: { type: "string" },
      "connect-timeout": { type: "string" },
      "trace-rpcs": { type: "boolean" },
      verbose: { type: "boolean" },
      "wait-deadline": { type: "string" },
      "omit-unscheduled-start": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  return {
    address: values.address ?? process.env.NETHERITE_ADDRESS ?? ADDRESS_DEFAULT,
    only: values.only ? values.only.split(",").filter(Boolean) : [],
    list: values.list ?? false,
    help: values.help ?? false,
    waitSeconds: seconds(values.timeout, WAIT_SECONDS_DEFAULT, "--timeout"),
    connectSeconds: seconds(values["connect-timeout"], CONNECT_SECONDS_DEFAULT,
      "--connect-timeout"),
    traceRpcs: values["trace-rpcs"] ?? false,
    verbose: values.verbose ?? false,
    waitDeadlineSeconds: seconds(values["wait-deadline"], undefined, "--wait-deadline"),
    omitUnscheduledStart: values["omit-unscheduled-start"] ?? false,
  };
}

function seconds(text, fallback, flag) {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!(value > 0)) throw new Error(`${flag} wants a positive number of seconds, got '${text}'`);
  return value;
}

function selectScenarios(only) {
  if (only.length === 0) return SCENARIOS;
  return SCENARIOS.filter((s) => only.some((part) => s.name.includes(part)));
}

/** The grpc-js options for the SDK's channels: the interceptors that the flags ask for. */
function channelOptions(opts, trace) {
  const interceptors = [];
  if (trace) interceptors.push(trace.interceptor());
  if (opts.waitDeadlineSeconds) interceptors.push(waitDeadline(opts.waitDeadlineSeconds));
  if (opts.omitUnscheduledStart) interceptors.push(omitUnscheduledStart());
  return { interceptors };
}

/** Resolves once the sidecar accepts an HTTP/2 connection, so the worker's first try works. */
async function sidecarReady(address, seconds) {
  const probe = new grpc.Client(address, grpc.credentials.createInsecure());
  try {
    await new Promise((resolve, reject) => {
      probe.waitForReady(Date.now() + seconds * 1000, (err) => (err ? reject(err) : resolve()));
    });
  } catch (e) {
    throw new Error(`no sidecar at ${address} after ${seconds}s: ${e.message}`);
  } finally {
    probe.close();
  }
}

/** Runs `scenario` with a time budget; returns the error, or undefined if it passed. */
async function runOne(scenario, env, budgetSeconds) {
  let timer;
  const overBudget = new Promise((_, reject) => {
    const fail = () => reject(new Error(`over budget of ${budgetSeconds}s`));
    timer = setTimeout(fail, budgetSeconds * 1000);
  });
  try {
    await Promise.race([scenario.run(env), overBudget]);
    return undefined;
  } catch (e) {
    return e;
  } finally {
    clearTimeout(timer);
  }
}

async function runAll(scenarios, env, budgetSeconds) {
  let passed = 0;
  let failed = 0;
  for (const scenario of scenarios) {
    const startedAt = Date.now();
    const error = await runOne(scenario, env.forScenario(scenario.name), budgetSeconds);
    const took = `${((Date.now() - startedAt) / 1000).toFixed(1)}s`;
    if (error) {
      failed += 1;
      console.log(`FAIL ${scenario.name} (${took}): ${error.message}`);
      // An assertion's message says it all; anything else gets its stack.
      if (error.stack && error.code !== "ERR_ASSERTION") console.log(indent(error.stack));
    } else {
      passed += 1;
      console.log(`ok   ${scenario.name} (${took})`);
    }
  }
  return { passed, failed };
}

function indent(text) {
  return text.split("\n").map((line) => `       ${line}`).join("\n");
}

/** A started worker with the app registered, and a client, both on the sidecar. */
async function connect(opts, trace) {
  const logger = opts.verbose ? new sdk.ConsoleLogger() : new sdk.NoOpLogger();
  const common = { hostAddress: opts.address, options: channelOptions(opts, trace), logger };
  await sidecarReady(opts.address, opts.connectSeconds);

  const worker = new sdk.TaskHubGrpcWorker({ ...common, shutdownTimeoutMs: WORKER_STOP_MS });
  register(worker);
  await worker.start();
  return { worker, client: new sdk.TaskHubGrpcClient(common) };
}

function newRunId() {
  return `js-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
}

async function main() {
  const opts = parseOptions(process.argv.slice(2));
  if (opts.help) return void console.log(USAGE);
  const scenarios = selectScenarios(opts.only);
  if (opts.list) return void scenarios.forEach((s) => console.log(s.name));
  if (sdkVersion !== SDK_VERSION_PINNED) {
    throw new Error(`SDK ${sdkVersion} in ${sdkDir}, scenarios are for ${SDK_VERSION_PINNED}`);
  }
  if (scenarios.length === 0) throw new Error(`no scenario matches --only ${opts.only.join(",")}`);

  const runId = newRunId();
  console.log(`durabletask-js ${sdkVersion} against ${opts.address}, run ${runId}, ` +
    `${scenarios.length} scenarios`);
  const trace = opts.traceRpcs ? new RpcTrace() : undefined;
  const { worker, client } = await connect(opts, trace);
  const env = {
    client,
    waitSeconds: opts.waitSeconds,
    forScenario(name) {
      return { ...this, id: (label) => `${runId}-${name}-${label}` };
    },
  };

  const { passed, failed } = await runAll(scenarios, env, opts.waitSeconds * WAITS_PER_SCENARIO);

  await Promise.allSettled([worker.stop(), client.stop()]);
  if (trace) console.error(JSON.stringify(trace.summary(), null, 2));
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

// Waits that timed out stay open inside grpc-js, so the exit is explicit.
main().then(
  (code) => process.exit(code ?? 0),
  (e) => {
    console.error(`scenarios: ${e.message}`);
    console.log("0 passed, 1 failed");
    process.exit(2);
  },
);

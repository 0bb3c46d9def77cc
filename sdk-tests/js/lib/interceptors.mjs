// grpc-js interceptors that the scenarios can put on the SDK's channels.
//
// The SDK passes its `options` argument straight to the generated grpc-js client, so
// `{ interceptors: [...] }` reaches every call the worker or the client makes. Two of them change
// what is sent and exist only to validate the scenarios against a backend with known bugs (see
// README.md); against netherite they stay off. The third only watches, and records which RPCs
// the SDK makes and with what, for whoever is building the server.

import { grpc } from "./sdk.mjs";

const SERVICE = "/TaskHubSidecarService/";
const WAIT_METHODS = new Set(["WaitForInstanceStart", "WaitForInstanceCompletion"]);

function methodOf(options) {
  return options.method_definition.path.slice(SERVICE.length);
}

/**
 * Gives the two wait RPCs a gRPC deadline of `seconds`. The JS client sets none (it only races
 * the call locally), and a backend that cannot handle an infinite deadline needs one.
 */
export function waitDeadline(seconds) {
  return (options, nextCall) => {
    if (WAIT_METHODS.has(methodOf(options)) && options.deadline === undefined) {
      options = { ...options, deadline: Date.now() + seconds * 1000 };
    }
    return new grpc.InterceptingCall(nextCall(options));
  };
}

/**
 * Drops `scheduledStartTimestamp` from StartInstance when it is the epoch, which is what the JS
 * client sends when no start time was asked for. A backend that takes the field at face value
 * would otherwise date the first episode in 1970.
 */
export function omitUnscheduledStart() {
  return (options, nextCall) => {
    if (methodOf(options) !== "StartInstance") {
      return new grpc.InterceptingCall(nextCall(options));
    }
    return new grpc.InterceptingCall(nextCall(options), {
      sendMessage(message, next) {
        const ts = message.getScheduledstarttimestamp();
        if (ts && ts.getSeconds() === 0 && ts.getNanos() === 0) {
          message.clearScheduledstarttimestamp();
        }
        next(message);
      },
    });
  };
}

/** Name of the set case of a protobuf oneof, from the generated `<Name>Case` enum. */
function oneofName(message, enumName, caseValue) {
  const names = message.constructor[enumName] ?? {};
  const found = Object.entries(names).find(([, value]) => value === caseValue);
  return found ? found[0].toLowerCase() : `case ${caseValue}`;
}

function bump(counts, key, by = 1) {
  counts.set(key, (counts.get(key) ?? 0) + by);
}

/**
 * Records the RPCs that the SDK makes: how often each method is called, the GetWorkItems
 * requests, the kinds of work item received, the actions in orchestrator responses, and whether
 * every completion or abandon echoes a token that the server handed out.
 */
export class RpcTrace {
  calls = new Map();
  workItems = new Map();
  actions = new Map();
  getWorkItemsRequests = [];
  startRequests = { epochStart: 0, futureStart: 0, noStart: 0 };
  tokens = { issued: new Set(), echoed: 0, unknown: 0, empty: 0 };
  entityResults = { withOperationInfos: 0, withoutOperationInfos: 0 };

  /** The interceptor to install on the worker's and the client's channel. */
  interceptor() {
    return (options, nextCall) => {
      const method = methodOf(options);
      const trace = this;
      return new grpc.InterceptingCall(nextCall(options), {
        start(metadata, listener, next) {
          next(metadata, {
            onReceiveMessage(message, nextMessage) {
              if (method === "GetWorkItems") trace.#onWorkItem(message);
              nextMessage(message);
            },
          });
        },
        sendMessage(message, next) {
          trace.#onSend(method, message);
          next(message);
        },
      });
    };
  }

  #onSend(method, message) {
    bump(this.calls, method);
    if (method === "GetWorkItems") this.getWorkItemsRequests.push(message.toObject());
    if (method === "StartInstance") this.#onStart(message);
    if (method === "CompleteOrchestratorTask") this.#onOrchestratorResponse(message);
    if (method === "CompleteEntityTask") this.#onEntityResult(message);
    if (method.startsWith("Complete") || method.startsWith("Abandon")) {
      this.#onToken(message.getCompletiontoken());
    }
  }

  #onStart(request) {
    const ts = request.getScheduledstarttimestamp();
    if (!ts) this.startRequests.noStart += 1;
    else if (ts.getSeconds() === 0 && ts.getNanos() === 0) this.startRequests.epochStart += 1;
    else this.startRequests.futureStart += 1;
  }

  #onWorkItem(item) {
    bump(this.workItems, oneofName(item, "RequestCase", item.getRequestCase()));
    const token = item.getCompletiontoken();
    if (token) this.tokens.issued.add(token);
  }

  #onOrchestratorResponse(response) {
    for (const action of response.getActionsList()) {
      const caseValue = action.getOrchestratoractiontypeCase();
      let kind = oneofName(action, "OrchestratoractiontypeCase", caseValue);
      const entity = action.getSendentitymessage();
      if (entity) {
        kind += `.${oneofName(entity, "EntitymessagetypeCase", entity.getEntitymessagetypeCase())}`;
      }
      bump(this.actions, kind);
    }
  }

  #onEntityResult(result) {
    if (result.getOperationinfosList().length > 0) this.entityResults.withOperationInfos += 1;
    else this.entityResults.withoutOperationInfos += 1;
  }

  #onToken(token) {
    if (!token) this.tokens.empty += 1;
    else if (this.tokens.issued.has(token)) this.tokens.echoed += 1;
    else this.tokens.unknown += 1;
  }

  /** A plain-object summary, ready for JSON. */
  summary() {
    const { issued, ...tokens } = this.tokens;
    return {
      calls: Object.fromEntries([...this.calls].sort()),
      getWorkItemsRequests: this.getWorkItemsRequests,
      workItemsReceived: Object.fromEntries(this.workItems),
      orchestratorActions: Object.fromEntries([...this.actions].sort()),
      startInstanceScheduledStart: this.startRequests,
      completionTokens: { issued: issued.size, ...tokens },
      entityBatchResults: this.entityResults,
    };
  }
}

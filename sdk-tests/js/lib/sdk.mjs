// Loads the Durable Task SDK and grpc-js from the folder that .ci/sdk-js-env installs into.
//
// node_modules is kept out of the repo, and ES modules ignore NODE_PATH, so the packages are
// resolved with a `require` rooted at that folder. Both packages are CommonJS, which makes this
// the ordinary way to load them. The folder is $NETHERITE_JS_SDK_DIR, by default
// $HOME/.cache/netherite/sdk/js.

import { createRequire } from "node:module";
import { homedir } from "node:os";
import { join } from "node:path";

/** The SDK version these scenarios are written against; package.json pins the same one. */
export const SDK_VERSION_PINNED = "0.4.0";

export const sdkDir =
  process.env.NETHERITE_JS_SDK_DIR ?? join(homedir(), ".cache", "netherite", "sdk", "js");

const requireFromSdkDir = createRequire(join(sdkDir, "package.json"));

function load(name) {
  try {
    return requireFromSdkDir(name);
  } catch (e) {
    throw new Error(`cannot load ${name} from ${sdkDir}; run .ci/sdk-js-env first (${e.message})`);
  }
}

/** The public API of @microsoft/durabletask-js. */
export const sdk = load("@microsoft/durabletask-js");

/** The grpc-js instance the SDK itself uses (npm hoists a single copy). */
export const grpc = load("@grpc/grpc-js");

/** The installed SDK version, so a run can refuse a version it was not written for. */
export const sdkVersion = load("@microsoft/durabletask-js/package.json").version;

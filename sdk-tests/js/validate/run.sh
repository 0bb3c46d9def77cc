#!/usr/bin/env bash
# Validates the JS scenarios against the Python SDK's in-memory backend, where no netherite is
# needed: installs durabletask==1.12.0 into a throwaway venv, serves the backend on a free
# loopback port, runs scenarios.mjs against it, and stops the backend on exit.
#
# Extra arguments go to scenarios.mjs. With none, the two validation shims are on (that backend
# crashes on waits without a deadline and dates JS instances at the epoch); pass --raw first to
# run without them and see those bugs.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
venv="${JSVAL_VENV:-/tmp/jsval-venv}"
python_sdk="durabletask==1.12.0"
ready_seconds=30
shims=(--wait-deadline 120 --omit-unscheduled-start)

if [[ "${1:-}" == "--raw" ]]; then
    shims=()
    shift
fi

if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "$python_sdk"
bash "$repo/.ci/sdk-js-env" >/dev/null

log="$(mktemp /tmp/jsval-backend.XXXXXX.log)"
"$venv/bin/python" -u "$here/inmemory_backend.py" --port "${JSVAL_PORT:-0}" >"$log" 2>&1 &
backend=$!
trap 'kill "$backend" 2>/dev/null; wait "$backend" 2>/dev/null || true' EXIT

# The address is known only once the backend has bound; never test whatever else may listen.
address=""
for _ in $(seq $((ready_seconds * 10))); do
    address="$(sed -n 's/^listening on //p' "$log")"
    [[ -n "$address" ]] && break
    if ! kill -0 "$backend" 2>/dev/null; then
        cat "$log" >&2
        echo "validate: the in-memory backend exited" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ -z "$address" ]]; then
    echo "validate: the in-memory backend did not bind within ${ready_seconds}s, log $log" >&2
    exit 1
fi
echo "in-memory backend pid $backend on $address, log $log"

node "$here/../scenarios.mjs" --address "$address" "${shims[@]}" "$@"

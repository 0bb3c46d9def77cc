"""Kill -9 test: a sidecar killed mid-run must finish every orchestration exactly once.

    python crash.py --server-bin PATH --data-dir DIR [--listen 127.0.0.1:PORT] [--m 20]
                    [--sleep 0.5] [--kills 1] [--timeout 180] [--expect-state-loss]

The driver starts the server itself as `PATH serve --listen ADDR --data-dir DIR` (in a process
group of its own, so a wrapper script and its children die together), connects an SDK worker
(in this process) and an SDK client, and starts M hello sequences whose activities sleep, so
that they are in flight. Once about half as many activities as orchestrations have started, it
kills the server with SIGKILL, starts it again on the same port and data directory, and lets
the worker reconnect by itself. `--kills K` repeats the kill and restart K times; `--kills 0`
runs the same checks with no crash at all, a baseline for any server.

Then every orchestration must be COMPLETED with the three greetings, and each history must hold
exactly one ExecutionStarted, one ExecutionCompleted, and each activity scheduled and completed
exactly once: a crash may re-run work, but it must not show in the recorded outcome.

`--expect-state-loss` is for rehearsing the mechanics against a server that keeps nothing, such
as `inmem_server.py` behind a wrapper script: the durability checks are replaced by one that
the pre-crash instances are gone. Every step is a check; the last line is `N passed, N failed`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from typing import Callable

import grpc

import app
import harness
from harness import CheckFailed, check, check_eq, kind_counts, of_kind
from durabletask.client import OrchestrationStatus

READY_TIMEOUT_DEFAULT = 60.0
STOP_GRACE_SECONDS = 10.0


class Aborted(Exception):
    """A step that later steps depend on failed."""


class Checklist:
    """Runs named steps, prints each outcome, and counts them."""

    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def run(self, name: str, step: Callable[[], object], gate: bool = True):
        """Runs `step`; a failure of a `gate` step stops the run. Returns the step's value."""
        try:
            value = step()
        except (CheckFailed, grpc.RpcError, TimeoutError, OSError) as error:
            self.failed += 1
            print(f"{name} ... FAILED: {describe(error)}", flush=True)
            if gate:
                raise Aborted(name) from error
            return None
        self.passed += 1
        detail = f" ({value})" if isinstance(value, str) and value else ""
        print(f"{name} ... ok{detail}", flush=True)
        return value


def describe(error: BaseException) -> str:
    if isinstance(error, grpc.RpcError):
        return f"RPC failed: {error.code().name} {error.details()}"
    return str(error) or type(error).__name__


class Server:
    """The sidecar process under test, started and killed by us."""

    def __init__(self, args, log_path: str):
        self.command = [args.server_bin, "serve", "--listen", args.listen,
                        "--data-dir", args.data_dir, *args.server_arg]
        self.listen = args.listen
        self.ready_timeout = args.ready_timeout
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> str:
        """Starts the server and waits until it answers Hello."""
        check(not harness.port_open(self.listen), f"something already listens on {self.listen}")
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        while time.monotonic() - began < self.ready_timeout:
            code = self.process.poll()
            check(code is None, f"server exited with status {code} before answering")
            if harness.sidecar_ready(self.listen, timeout=1.0):
                return f"pid {self.process.pid}, answered after {time.monotonic() - began:.1f}s"
        raise CheckFailed(f"server did not answer Hello within {self.ready_timeout:.0f}s")

    def kill(self) -> str:
        """SIGKILL to the server's whole process group, then reap it."""
        check(self.process is not None and self.process.poll() is None, "server is not running")
        os.killpg(self.process.pid, signal.SIGKILL)
        code = self.process.wait(timeout=STOP_GRACE_SECONDS)
        check_eq(code, -signal.SIGKILL, "server exit status")
        return f"pid {self.process.pid} killed"

    def stop(self) -> None:
        """Ends the server if it still runs: SIGTERM, then SIGKILL after a grace period."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 20) -> str:
        with open(self.log_path, "rb") as log:
            return b"".join(log.readlines()[-lines:]).decode(errors="replace")


# The codes with which a call fails while the sidecar is down or restarting.
UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
               grpc.StatusCode.CANCELLED}


def retrying(call: Callable[[], object], deadline: float, what: str):
    """`call()` again and again while the sidecar is unreachable, until `deadline`."""
    while True:
        try:
            return call()
        except (grpc.RpcError, TimeoutError) as error:
            if isinstance(error, grpc.RpcError) and error.code() not in UNREACHABLE:
                raise
            if time.monotonic() >= deadline:
                raise CheckFailed(f"{what}: still failing at the deadline: {describe(error)}")
            time.sleep(0.5)


def start_all(client, ids: list[str], sleep: float) -> str:
    for instance_id in ids:
        client.schedule_new_orchestration(app.slow_hello_sequence, input=sleep,
                                          instance_id=instance_id)
    return f"{len(ids)} instances"


def wait_for_progress(client, ids: list[str], activities: int, timeout: float) -> str:
    """Waits until `activities` more slow activities have started, then checks that work is
    still outstanding, so that the kill lands mid-run."""
    target = app.slow_calls + activities
    harness.wait_until(lambda: app.slow_calls >= target, timeout,
                       f"{activities} more activity executions")
    done = sum(1 for i in ids if (st := client.get_orchestration_state(i))
               and st.runtime_status == OrchestrationStatus.COMPLETED)
    check(done < len(ids), f"all {len(ids)} orchestrations completed before the kill")
    return f"{app.slow_calls} activities started, {done}/{len(ids)} orchestrations done"


def reconnected(client, prefix: str, timeout: float) -> str:
    """A new orchestration completes, which needs the worker to be connected again."""
    deadline = time.monotonic() + timeout
    probe = f"{prefix}-probe"
    retrying(lambda: client.schedule_new_orchestration(app.hello_sequence, instance_id=probe),
             deadline, "StartInstance after restart")
    state = retrying(lambda: client.wait_for_orchestration_completion(
        probe, timeout=max(1.0, deadline - time.monotonic())), deadline, "probe completion")
    check(state is not None and state.runtime_status == OrchestrationStatus.COMPLETED,
          f"probe ended as {state.runtime_status.name if state else 'missing'}")
    return ""


def final_states(client, ids: list[str], timeout: float) -> dict:
    """Each instance's state once it has ended, or None if the server no longer knows it."""
    deadline = time.monotonic() + timeout
    states = {}
    for instance_id in ids:
        def wait(instance_id=instance_id):
            # Some backends hold a wait on an unknown id until its deadline: ask first.
            if client.get_orchestration_state(instance_id) is None:
                return None
            left = max(1.0, min(30.0, deadline - time.monotonic()))
            return client.wait_for_orchestration_completion(instance_id, timeout=left)
        states[instance_id] = retrying(wait, deadline, f"waiting for {instance_id}")
    return states


def check_all_exist(states: dict) -> str:
    missing = [i for i, st in states.items() if st is None]
    check(not missing, f"{len(missing)} of {len(states)} instances are gone, e.g. {missing[:1]}")
    return ""


def check_all_completed(states: dict) -> str:
    statuses = Counter(st.runtime_status.name if st else "MISSING" for st in states.values())
    check_eq(dict(statuses), {"COMPLETED": len(states)}, "final statuses")
    return ""


def check_outputs(states: dict) -> str:
    wrong = [i for i, st in states.items() if not st or st.get_output() != app.HELLO_OUTPUT]
    check(not wrong, f"{len(wrong)} wrong outputs, e.g. {wrong[:1]}")
    return ""


def check_histories(histories: dict, kind: str) -> str:
    bad = {i: n for i, h in histories.items() if (n := kind_counts(h)[kind]) != 1}
    check(not bad, f"{len(bad)} histories without exactly one {kind}: {list(bad.items())[:3]}")
    return ""


def check_tasks_once(histories: dict) -> str:
    """Three activities per history, each scheduled once and completed once."""
    for instance_id, events in histories.items():
        scheduled = Counter(e.event_id for e in of_kind(events, "TaskScheduled"))
        completed = Counter(e.task_scheduled_id for e in of_kind(events, "TaskCompleted"))
        check(len(scheduled) == 3 and set(scheduled.values()) == {1},
              f"{instance_id}: TaskScheduled ids {dict(scheduled)}")
        check(completed == scheduled, f"{instance_id}: TaskCompleted ids {dict(completed)}")
    return ""


def check_state_lost(client, ids: list[str]) -> str:
    left = [i for i in ids if client.get_orchestration_state(i) is not None]
    check(not left, f"{len(left)} pre-crash instances survived a server that keeps nothing")
    return f"{len(ids)} pre-crash instances gone, as expected of this server"


def durability(checks: Checklist, client, ids, args) -> None:
    states = checks.run("every orchestration can be waited for",
                        lambda: final_states(client, ids, args.timeout))
    checks.run("every orchestration survived the crash", lambda: check_all_exist(states),
               gate=False)
    checks.run("every orchestration COMPLETED", lambda: check_all_completed(states), gate=False)
    checks.run("every output is the three greetings", lambda: check_outputs(states), gate=False)
    deadline = time.monotonic() + args.timeout
    histories = {i: retrying(lambda i=i: client.get_orchestration_history(i), deadline,
                             f"history of {i}") for i, st in states.items() if st}
    if not histories:
        raise Aborted("no history to check")
    checks.run("exactly one ExecutionStarted per history",
               lambda: check_histories(histories, "ExecutionStarted"), gate=False)
    checks.run("exactly one ExecutionCompleted per history",
               lambda: check_histories(histories, "ExecutionCompleted"), gate=False)
    checks.run("each activity scheduled and completed exactly once",
               lambda: check_tasks_once(histories), gate=False)


def scenario(checks: Checklist, server: Server, args, logger) -> None:
    """The whole story; Aborted ends it early."""
    checks.run("server starts and answers Hello", server.start)
    worker = harness.make_worker(args.listen, None, logger, app.register, args.worker_threads)
    client = harness.make_client(args.listen, None, logger)
    worker.start()
    try:
        prefix = harness.unique_prefix("crash")
        ids = [f"{prefix}-{i:03}" for i in range(args.m)]
        checks.run(f"start {args.m} slow hello sequences",
                   lambda: start_all(client, ids, args.sleep))
        for n in range(1, args.kills + 1):
            checks.run(f"kill {n}: work is in flight",
                       lambda: wait_for_progress(client, ids, args.kill_after, args.timeout))
            checks.run(f"kill {n}: SIGKILL the server", server.kill)
            checks.run(f"kill {n}: server restarts on the same port and data dir", server.start)
        probe = "worker reconnects" if args.kills else "worker is connected"
        checks.run(f"{probe} (a new orchestration completes)",
                   lambda: reconnected(client, prefix, args.timeout))
        if args.expect_state_loss:
            checks.run("pre-crash instances are gone", lambda: check_state_lost(client, ids))
        else:
            durability(checks, client, ids, args)
    finally:
        worker.stop()
        client.close()


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-bin", required=True, help="the sidecar binary (or a wrapper)")
    parser.add_argument("--data-dir", required=True, help="passed to `serve --data-dir`")
    parser.add_argument("--listen", default=None,
                        help="loopback HOST:PORT for the server (default: a free port)")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra argument for `serve` (repeatable)")
    parser.add_argument("--m", type=int, default=20, help="orchestrations (default: %(default)s)")
    parser.add_argument("--sleep", type=float, default=0.5,
                        help="seconds each activity sleeps (default: %(default)s)")
    parser.add_argument("--kills", type=int, default=1,
                        help="kill/restart cycles; 0 makes the same checks without a crash")
    parser.add_argument("--kill-after", type=int, default=None,
                        help="activity starts before each kill (default: m/2)")
    parser.add_argument("--timeout", type=float, default=180.0,
                        help="seconds for each wait (default: %(default)s)")
    parser.add_argument("--ready-timeout", type=float, default=READY_TIMEOUT_DEFAULT,
                        help="seconds for the server to answer after a start (default: 60)")
    parser.add_argument("--worker-threads", type=int, default=16,
                        help="the SDK worker's thread pool (default: %(default)s)")
    parser.add_argument("--expect-state-loss", action="store_true",
                        help="the server keeps nothing: check mechanics only")
    parser.add_argument("--verbose", action="store_true", help="show the SDK's own logs")
    args = parser.parse_args(argv)
    args.listen = args.listen or f"127.0.0.1:{harness.free_port()}"
    args.kill_after = args.kill_after or max(1, args.m // 2)
    if not args.listen.startswith("127."):
        parser.error("--listen must be a 127.0.0.0/8 address")
    if args.kills < 0:
        parser.error("--kills must be 0 or more")
    if args.expect_state_loss and args.kills != 1:
        parser.error("--expect-state-loss allows one kill: nothing is left to run after it")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    os.makedirs(args.data_dir, exist_ok=True)
    log_fd, log_path = tempfile.mkstemp(prefix="crash-server-", suffix=".log")
    os.close(log_fd)
    print(f"server: {' '.join([args.server_bin, 'serve', '--listen', args.listen])} "
          f"--data-dir {args.data_dir}; log: {log_path}", flush=True)

    checks = Checklist()
    server = Server(args, log_path)
    try:
        # Below --verbose the SDK stays silent: failing to deliver results to a killed server
        # is what this test provokes.
        scenario(checks, server, args, harness.sdk_logger(args.verbose, logging.CRITICAL))
    except Aborted as aborted:
        print(f"stopped after the failed step {str(aborted)!r}; server log tail:\n"
              f"{server.log_tail()}", flush=True)
    finally:
        server.stop()
    print(harness.summary_line(checks.passed, checks.failed), flush=True)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Plumbing shared by the scenario suite, the benchmark and the crash driver.

Everything here talks to a Durable Task sidecar through the public Python SDK (`durabletask`
1.12.0): a client, a worker, and, for `--in-memory` runs, the SDK's own in-memory backend
(`durabletask.testing`). The main decision is that the in-memory backend is served by a gRPC
server we build ourselves rather than by its `start()`: that method binds every interface
(`[::]`) and gives the server 10 threads, and every pending `WaitForInstanceCompletion` holds one
of them, so a client with more than a handful of waits in flight starves the worker's
`Complete*` calls. Ours binds loopback only and sizes the pool for the load.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import sys
import threading
import time
import uuid
from concurrent import futures
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import grpc
from google.protobuf import empty_pb2

from durabletask import client as dt_client
from durabletask import worker as dt_worker
from durabletask.internal import orchestrator_service_pb2_grpc as dt_stubs
from durabletask.testing import InMemoryOrchestrationBackend

DEFAULT_ADDRESS = "127.0.0.1:4001"
ADDRESS_ENV = "NETHERITE_ADDRESS"
IN_MEMORY_THREADS_DEFAULT = 256


def default_address() -> str:
    """The sidecar address: `$NETHERITE_ADDRESS`, else the SDKs' usual port on loopback."""
    return os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS


def split_address(address: str) -> tuple[str, int]:
    """`"127.0.0.1:4001"` -> `("127.0.0.1", 4001)`."""
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def sdk_logger(verbose: bool, quiet_level: int = logging.ERROR) -> logging.Logger:
    """A logger for the SDK's client and worker: INFO if `verbose`, else `quiet_level` and up."""
    logger = logging.getLogger("sdk-tests.durabletask")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s sdk: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO if verbose else quiet_level)
    return logger


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(address: str) -> bool:
    """Whether something accepts TCP connections at `address`."""
    host, port = split_address(address)
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def sidecar_ready(address: str, timeout: float) -> bool:
    """Whether the sidecar at `address` answers `Hello` within `timeout` seconds."""
    channel = grpc.insecure_channel(address)
    try:
        stub = dt_stubs.TaskHubSidecarServiceStub(channel)
        stub.Hello(empty_pb2.Empty(), timeout=timeout, wait_for_ready=True)
        return True
    except grpc.RpcError:
        return False
    finally:
        channel.close()


class InMemoryServer:
    """The SDK's in-memory backend served on loopback, in this process."""

    def __init__(self, port: int = 0, threads: int = IN_MEMORY_THREADS_DEFAULT, verbose=False):
        # Its warnings (e.g. "recursive termination is not supported") are the known gaps
        # that the scenarios report themselves.
        backend_log = logging.getLogger("durabletask.testing.in_memory_backend")
        backend_log.setLevel(logging.INFO if verbose else logging.ERROR)
        self.backend = InMemoryOrchestrationBackend()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads))
        dt_stubs.add_TaskHubSidecarServiceServicer_to_server(self.backend, self._server)
        bound = self._server.add_insecure_port(f"127.0.0.1:{port}")
        if bound == 0:
            raise RuntimeError(f"cannot bind 127.0.0.1:{port} for the in-memory backend")
        self.address = f"127.0.0.1:{bound}"

    def start(self) -> "InMemoryServer":
        self._server.start()
        return self

    def stop(self) -> None:
        # A short grace lets the worker's stream end with CANCELLED rather than hang.
        self._server.stop(grace=1.0).wait()

    def wait_for_termination(self) -> None:
        self._server.wait_for_termination()


@dataclass
class Call:
    """One RPC as the SDK issued it."""

    method: str
    timeout: float | None
    request: Any
    at: float


class RpcRecorder(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """A gRPC client interceptor that remembers every RPC: method, deadline and request.

    It only watches; the SDK's own interceptors and channel handling are left as they are.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[Call] = []

    def _record(self, details: grpc.ClientCallDetails, request: Any) -> None:
        method = details.method.rsplit("/", 1)[-1]
        with self._lock:
            self.calls.append(Call(method, details.timeout, request, time.monotonic()))

    def intercept_unary_unary(self, continuation, client_call_details, request):
        self._record(client_call_details, request)
        return continuation(client_call_details, request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        self._record(client_call_details, request)
        return continuation(client_call_details, request)

    def mark(self) -> int:
        """A position to pass to `since` later."""
        with self._lock:
            return len(self.calls)

    def since(self, mark: int) -> list[Call]:
        with self._lock:
            return list(self.calls[mark:])

    def count(self, method: str, mark: int = 0) -> int:
        return sum(1 for c in self.since(mark) if c.method == method)


def summarize_calls(calls: Iterable[Call]) -> str:
    """`"StartInstance x1 (no deadline), WaitForInstanceCompletion x1 (deadline)"`."""
    counts: collections.Counter[str] = collections.Counter()
    deadlines: dict[str, set[bool]] = collections.defaultdict(set)
    for call in calls:
        counts[call.method] += 1
        deadlines[call.method].add(call.timeout is not None)
    parts = []
    for method, n in counts.items():
        kinds = deadlines[method]
        tag = "deadline" if kinds == {True} else "no deadline" if kinds == {False} else "mixed"
        parts.append(f"{method} x{n} ({tag})")
    return ", ".join(parts) or "none"


def make_client(address: str, recorder: RpcRecorder | None, logger: logging.Logger):
    """An SDK client for `address`, with `recorder` watching its calls."""
    return dt_client.TaskHubGrpcClient(
        host_address=address,
        interceptors=[recorder] if recorder else None,
        logger=logger,
    )


def make_worker(
    address: str,
    recorder: RpcRecorder | None,
    logger: logging.Logger,
    register: Callable[[dt_worker.TaskHubGrpcWorker], None],
    threads: int | None = None,
):
    """An SDK worker for `address` with everything `register` adds; not started yet."""
    concurrency = dt_worker.ConcurrencyOptions(maximum_thread_pool_workers=threads)
    worker = dt_worker.TaskHubGrpcWorker(
        host_address=address,
        interceptors=[recorder] if recorder else None,
        logger=logger,
        concurrency_options=concurrency,
    )
    register(worker)
    return worker


class CheckFailed(AssertionError):
    """A scenario's expectation did not hold; the message says which and what was seen."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def check_eq(actual: Any, expected: Any, what: str) -> None:
    if actual != expected:
        raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval=0.1) -> Any:
    """Poll `predicate` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise CheckFailed(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def kind(event: Any) -> str:
    """A history event's class name without the `Event` suffix, e.g. `TaskScheduled`."""
    return type(event).__name__.removesuffix("Event")


def event_kinds(events: Iterable[Any]) -> list[str]:
    return [kind(e) for e in events]


def of_kind(events: Iterable[Any], name: str) -> list[Any]:
    """The events of one kind, e.g. `of_kind(history, "TimerFired")`."""
    return [e for e in events if kind(e) == name]


def kind_counts(events: Iterable[Any]) -> collections.Counter[str]:
    return collections.Counter(event_kinds(events))


def unique_prefix(label: str) -> str:
    """A per-run id prefix, so runs against a long-lived server never collide."""
    return f"{label}-{uuid.uuid4().hex[:10]}"


def summary_line(passed: int, failed: int) -> str:
    """The closing line that CI reads."""
    return f"{passed} passed, {failed} failed"

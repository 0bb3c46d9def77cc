"""End-to-end throughput and latency of hello sequences through the Python SDK.

    python bench.py --address HOST:PORT [--n 500] [--concurrency 50]
    python bench.py --in-memory [--n 500] [--concurrency 50]
    python bench.py --both --address HOST:PORT [--n 500] [--concurrency 50]

One SDK worker and one SDK client run N `hello_sequence` orchestrations (three chained
activities each), C at a time: C client threads each start one, wait for it to complete, and
start the next. Latency is from just before StartInstance to the moment WaitForInstanceCompletion
returns, as the client sees it. The figures therefore include the Python worker's own cost,
which is the same for every backend, so compare backends side by side (`--both`) rather than
against numbers from elsewhere.

`--in-memory` runs the SDK's in-memory backend (`durabletask.testing`) in a child process
(`inmem_server.py`), so that, like a real sidecar, it does not share this process's GIL.
The exit status is 1 if any orchestration failed or timed out.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass

import app
import harness
from durabletask.client import OrchestrationStatus

HERE = os.path.dirname(os.path.abspath(__file__))
WARMUP_MAX = 10


@dataclass
class Result:
    """What one benchmark run measured."""

    label: str
    n: int
    concurrency: int
    seconds: float
    latencies: list[float]
    failures: int

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile of the successful latencies, in seconds."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def run_one(client, timeout: float) -> float | None:
    """One hello sequence, start to completion; its latency, or None if it went wrong."""
    began = time.perf_counter()
    instance_id = client.schedule_new_orchestration(app.hello_sequence)
    state = client.wait_for_orchestration_completion(instance_id, timeout=timeout)
    took = time.perf_counter() - began
    if state is None or state.runtime_status != OrchestrationStatus.COMPLETED:
        return None
    return took if state.get_output() == app.HELLO_OUTPUT else None


def run_many(client, n: int, concurrency: int, timeout: float) -> tuple[list[float], int, float]:
    """N orchestrations, `concurrency` in flight; (latencies, failures, wall seconds)."""
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()

    def one(_):
        nonlocal failures
        try:
            took = run_one(client, timeout)
        except Exception:  # noqa: BLE001 - counted, the run goes on
            took = None
        with lock:
            if took is None:
                failures += 1
            else:
                latencies.append(took)

    began = time.perf_counter()
    with futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(n)))
    return latencies, failures, time.perf_counter() - began


def bench(label: str, address: str, args) -> Result:
    """Starts a worker and a client on `address`, warms up, then measures."""
    logger = harness.sdk_logger(args.verbose)
    worker = harness.make_worker(address, None, logger, app.register, args.worker_threads)
    client = harness.make_client(address, None, logger)
    worker.start()
    try:
        run_many(client, min(WARMUP_MAX, args.n), min(WARMUP_MAX, args.concurrency), args.timeout)
        latencies, failures, seconds = run_many(client, args.n, args.concurrency, args.timeout)
    finally:
        worker.stop()
        client.close()
    return Result(label, args.n, args.concurrency, seconds, latencies, failures)


def bench_in_memory(args) -> Result:
    """`bench` against the in-memory backend, served by a child process on a free port."""
    address = f"127.0.0.1:{harness.free_port()}"
    command = [sys.executable, os.path.join(HERE, "inmem_server.py"), "serve", "--listen", address]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        if not harness.sidecar_ready(address, timeout=30):
            raise SystemExit(f"the in-memory sidecar did not come up at {address}")
        return bench("in-memory", address, args)
    finally:
        server.terminate()
        server.wait(timeout=30)


def print_result(result: Result) -> None:
    print(f"backend: {result.label}  n={result.n} concurrency={result.concurrency}")
    print(f"orchestrations/s: {result.rate:.1f}")
    print(f"latency p50: {result.percentile(50) * 1000:.1f} ms")
    print(f"latency p99: {result.percentile(99) * 1000:.1f} ms")
    print(f"failed: {result.failures}", flush=True)


def print_table(results: list[Result]) -> None:
    header = (f"{'backend':<24} {'n':>6} {'conc':>5} {'orch/s':>9} "
              f"{'p50 ms':>9} {'p99 ms':>9} {'failed':>7}")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r.label:<24} {r.n:>6} {r.concurrency:>5} {r.rate:>9.1f} "
              f"{r.percentile(50) * 1000:>9.1f} {r.percentile(99) * 1000:>9.1f} {r.failures:>7}")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", default=harness.default_address(),
                        help="sidecar HOST:PORT (default: $NETHERITE_ADDRESS or 127.0.0.1:4001)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--in-memory", action="store_true",
                        help="bench the SDK's in-memory backend")
    target.add_argument("--both", action="store_true", help="bench in-memory and --address")
    parser.add_argument("--n", type=int, default=500, help="orchestrations (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=50,
                        help="orchestrations in flight (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds one orchestration may take (default: %(default)s)")
    parser.add_argument("--worker-threads", type=int, default=None,
                        help="the SDK worker's thread pool (default: the SDK's, cpu count + 4)")
    parser.add_argument("--verbose", action="store_true", help="show the SDK's own logs")
    args = parser.parse_args(argv)
    if args.n < 1 or args.concurrency < 1:
        parser.error("--n and --concurrency must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    results = []
    if args.in_memory or args.both:
        results.append(bench_in_memory(args))
    if not args.in_memory:
        results.append(bench(args.address, args.address, args))
    for result in results:
        print_result(result)
    if len(results) > 1:
        print()
        print_table(results)
    return 1 if any(r.failures for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

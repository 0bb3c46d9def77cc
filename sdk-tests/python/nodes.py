"""Several `netherite serve` nodes of one task hub, driven by the Python SDK.

Each node hosts the partitions the Kafka consumer group gives it, and hands the work of those
partitions to the workers connected to it. So, as with a sidecar per app instance, a worker
runs against every node; the client talks to the first node only, which reaches the
partitions hosted elsewhere through their Kafka inputs. Hello sequences with ids placed on
every partition (with `--n` at least the partition count) must each complete with their
output, and each node must answer status reads for instances whose partitions it does not
host.

    "$PY" nodes.py --addresses 127.0.0.1:4001,127.0.0.1:4002 --n 48
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent import futures

import app
import harness
from harness import check, check_eq

from durabletask.client import OrchestrationStatus


def run(addresses: list[str], n: int, timeout: float) -> None:
    logger = harness.sdk_logger(verbose=False)
    workers = [harness.make_worker(a, None, logger, app.register) for a in addresses]
    for worker in workers:
        worker.start()
    try:
        clients = [harness.make_client(a, None, logger) for a in addresses]
        ids = start_all(clients[0], n)
        finish_all(clients[0], ids, timeout)
        read_everywhere(clients, ids)
    finally:
        for worker in workers:
            worker.stop()


def start_all(client, n: int) -> list[str]:
    # An id ending in `!k` lives on partition k mod P, so the ids cover every partition.
    prefix = harness.unique_prefix("nodes")
    ids = [f"{prefix}-{i}!{i}" for i in range(n)]
    for instance_id in ids:
        client.schedule_new_orchestration(app.hello_sequence, instance_id=instance_id)
    return ids


def finish_all(client, ids: list[str], timeout: float) -> None:
    """Waits for every instance at once (each wait is a long poll on the server)."""

    def finish(instance_id: str):
        return client.wait_for_orchestration_completion(instance_id, timeout=timeout)

    with futures.ThreadPoolExecutor(max_workers=len(ids)) as pool:
        states = list(pool.map(finish, ids))
    for instance_id, state in zip(ids, states):
        check(state is not None, f"{instance_id}: no state")
        check_eq(state.runtime_status, OrchestrationStatus.COMPLETED, f"{instance_id} status")
        output = json.loads(state.serialized_output)
        check_eq(output, app.HELLO_OUTPUT, f"{instance_id} output")


def read_everywhere(clients, ids: list[str]) -> None:
    """Every node answers a status read of every instance, hosted there or not."""
    for client in clients:
        for instance_id in ids:
            state = client.get_orchestration_state(instance_id)
            check(state is not None, f"{instance_id}: unknown to a node")
            check_eq(state.runtime_status, OrchestrationStatus.COMPLETED, f"{instance_id} read")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--addresses", required=True, help="the nodes, comma-separated")
    parser.add_argument("--n", type=int, default=48, help="hello sequences to run")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per instance")
    args = parser.parse_args(argv)
    addresses = [a for a in args.addresses.split(",") if a]
    try:
        run(addresses, args.n, args.timeout)
    except harness.CheckFailed as failed:
        print(f"FAILED: {failed}", flush=True)
        print(harness.summary_line(0, 1), flush=True)
        return 1
    nodes = len(addresses)
    print(f"{args.n} hello sequences over {nodes} nodes: each completed, right output", flush=True)
    print(harness.summary_line(1, 0), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

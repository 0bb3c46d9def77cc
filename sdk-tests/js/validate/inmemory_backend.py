"""Serves the Python SDK's in-memory Durable Task backend on 127.0.0.1, for validating the JS
scenarios without netherite.

The package's own start() listens on every interface ([::]:port); this binds loopback only,
on a free port unless --port names one, and prints `listening on 127.0.0.1:PORT` once bound.
Runs until SIGTERM or SIGINT. Needs `durabletask==1.12.0` (validate/run.sh installs it).
"""

import argparse
import logging
import signal
import threading
from concurrent import futures

import grpc
from durabletask.internal import orchestrator_service_pb2_grpc as stubs
from durabletask.testing.in_memory_backend import InMemoryOrchestrationBackend

HANDLER_THREADS = 32


def serve(port: int) -> None:
    backend = InMemoryOrchestrationBackend(port=port)
    # Long waits and the work-item stream each hold a thread; the package default of 10 is
    # too few for a worker plus concurrent waits.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=HANDLER_THREADS))
    stubs.add_TaskHubSidecarServiceServicer_to_server(backend, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print(f"listening on 127.0.0.1:{bound}", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()

    # GetWorkItems loops watch the backend's shutdown event; set it before stopping the server.
    backend._shutdown_event.set()
    backend._work_available.set()
    server.stop(grace=1).wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    serve(args.port)


if __name__ == "__main__":
    main()

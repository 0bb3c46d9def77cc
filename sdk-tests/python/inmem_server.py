"""The SDK's in-memory backend as a stand-alone sidecar process, with netherite's command line.

    python inmem_server.py serve --listen 127.0.0.1:PORT [--data-dir DIR] [--threads N]

It lets the benchmark measure the in-memory backend in a process of its own, as a real sidecar
would be, and lets the crash driver rehearse its kill-and-restart mechanics before `netherite
serve` exists. `--data-dir` is accepted and created so the command line matches, but nothing is
stored there: all state is lost when the process ends, which is the point of the rehearsal.
It stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

import harness


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the in-memory backend until stopped")
    serve.add_argument("--listen", default=harness.DEFAULT_ADDRESS, help="HOST:PORT (loopback)")
    serve.add_argument("--data-dir", help="accepted for compatibility; nothing is kept there")
    serve.add_argument("--threads", type=int, default=harness.IN_MEMORY_THREADS_DEFAULT,
                       help="gRPC server threads (each pending wait holds one)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    host, port = harness.split_address(args.listen)
    if not host.startswith("127.") and host != "localhost":
        sys.exit(f"refusing to listen on {host}: loopback only")
    if args.data_dir:
        os.makedirs(args.data_dir, exist_ok=True)

    server = harness.InMemoryServer(port=port, threads=args.threads).start()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"in-memory sidecar listening on {server.address}", flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The single-machine fallback: a pure-Python Redis-protocol server (fakeredis) as a process of its own.

Where Valkey has no wheel (Windows), ``python -m backend run`` still needs a Redis
with no install: ``python -m backend.fallback_redis`` serves fakeredis over TCP on
a loopback port. It prints that port as its first line, then serves until its
standard input closes (the parent stopped or died: no orphan on any platform) or
it is terminated. Everything is held in memory; commands, keys, expiry and
pub/sub work as in Redis; ``INFO`` and persistence do not exist.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.fallback_redis", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    args = parser.parse_args(argv)

    from fakeredis import TcpFakeServer

    server = TcpFakeServer((args.host, args.port), server_type="redis")
    server.daemon_threads = True  # an open client connection must not hold up the exit
    threading.Thread(target=server.serve_forever, name="fakeredis", daemon=True).start()
    print(server.server_address[1], flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()  # returns at EOF: the parent closed the pipe or is gone
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

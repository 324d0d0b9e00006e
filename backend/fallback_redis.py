"""The single-machine fallback: a pure-Python Redis-protocol server (fakeredis) as a process of its own.

Where Valkey has no wheel (Windows), ``python -m backend run`` still needs a Redis
with no install: ``python -m backend.fallback_redis`` serves fakeredis over TCP on
a loopback port. It prints that port as its first line, then serves until its
standard input closes (the parent stopped or died: no orphan on any platform) or
it is terminated. Ctrl-C and Ctrl-Break it ignores, so that the parent's last
writes still find it. Everything is held in memory; commands, keys, expiry and
pub/sub work as in Redis; ``INFO`` and persistence do not exist.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from backend.processes import STOP_SIGNALS


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.fallback_redis", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    args = parser.parse_args(argv)

    from fakeredis import TcpFakeServer

    # Ctrl-C / Ctrl-Break reach the whole console group: the parent shuts down first, then closes our stdin
    for signum in STOP_SIGNALS:
        if signum != signal.SIGTERM:
            signal.signal(signum, signal.SIG_IGN)

    server = TcpFakeServer((args.host, args.port), server_type="redis")
    server.daemon_threads = True  # an open client connection must not hold up the exit
    threading.Thread(target=server.serve_forever, name="fakeredis", daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # returns at EOF: the parent closed the pipe or is gone
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

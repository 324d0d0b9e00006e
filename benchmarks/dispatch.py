"""The relay's own Python per subscriber: ``Hub.dispatch`` routing one-candle messages to N clients.

Every client's write is accepted at once and goes nowhere (no socket, no kernel), so what is timed is
the fan-out code alone: decode the Redis message's heads, offer the bytes to each subscriber, build the
frame once, hand it to each client's writer. Compare with ``benchmarks/fanout.py`` (the whole path, the
kernel's send included) to see what Python tuning could still gain.

    .venv/bin/python benchmarks/dispatch.py                 # 1,000 clients on one stream
    .venv/bin/python benchmarks/dispatch.py --clients 10000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.config import Settings  # noqa: E402
from backend.models import encode_batch  # noqa: E402
from backend.relay.client import Client  # noqa: E402
from backend.relay.hub import Hub  # noqa: E402
from tests.stack import make_candle  # noqa: E402

MESSAGES = 200  # one-candle messages per round, each a new seq of the stream
ROUNDS = 7  # best of


async def measure(clients: int) -> tuple[float, int]:
    """Best µs per subscriber per message over ``ROUNDS``, and the writes made (every one must be)."""
    hub = Hub(Settings())
    writes = 0

    def write(frame: bytes) -> bool:
        nonlocal writes
        writes += 1
        return True

    async def send(message: object) -> None:  # the ASGI path: unused while every write is accepted
        raise AssertionError("a write was declined")

    for i in range(clients):
        client = Client(hub, send, f"bench-{i}", write)
        hub.clients.add(client)
        hub.attach(client, ["BTCUSDT:1s"])
    t0 = 1_700_000_000_000
    messages = [encode_batch([make_candle("BTCUSDT", "1s", t0 + k * 1000, seq=k + 1)]) for k in range(MESSAGES)]
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for message in messages:
            hub.dispatch(message)
        best = min(best, (time.perf_counter() - start) / MESSAGES / clients * 1e6)
    return best, writes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000)
    args = parser.parse_args()
    per_subscriber_us, writes = asyncio.run(measure(args.clients))
    expected = args.clients * MESSAGES * ROUNDS
    if writes != expected:
        print(f"error: {writes:,} writes, expected {expected:,}", file=sys.stderr)
        return 1
    print(
        f"Hub.dispatch, {args.clients:,} clients on one stream, one-candle messages: "
        f"{per_subscriber_us:.2f} µs per subscriber per message (best of {ROUNDS} rounds of {MESSAGES})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

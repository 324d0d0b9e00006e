"""Relay workers: how many run, how their figures add up, how they share a port."""

from __future__ import annotations

import socket
import sys

import pytest

from backend.relay.bodies import RedisState, WorkerStats
from backend.relay.report import total
from backend.relay.workers import listening_sockets, spreads_connections, worker_count


def _worker(pid: int, **figures: object) -> WorkerStats:
    base: dict[str, object] = dict(
        connections=0, subscriptions={}, messages_in=0, messages_out=0, updates_in=0, updates_out=0, coalesced=0,
        dropped=0, slow_disconnects=0, invalid_messages=0, last_delay_ms=None, uptime_s=1.0,
        redis=RedisState(connected=True, reconnects=0, channel="c:updates", channels=["c:updates", "c:alerts"]),
    )  # fmt: skip
    return WorkerStats(worker=f"h:{pid}", host="h", pid=pid, **(base | figures))  # type: ignore[arg-type]


def test_the_figures_of_every_worker_add_up() -> None:
    a = _worker(
        20, connections=3, subscriptions={"BTCUSDT:1m": 2, "ETHUSDT:1m": 1}, messages_in=10, messages_out=30,
        updates_in=11, updates_out=33, coalesced=1, dropped=2, slow_disconnects=1, invalid_messages=0,
        last_delay_ms=4, uptime_s=9.5,
    )  # fmt: skip
    b = _worker(
        7, connections=2, subscriptions={"BTCUSDT:1m": 2}, messages_in=10, messages_out=20, updates_in=11,
        updates_out=22, coalesced=0, dropped=0, slow_disconnects=0, invalid_messages=3, last_delay_ms=6,
        uptime_s=2.0, redis=RedisState(connected=False, reconnects=2, channel="c:updates", channels=["c:updates"]),
    )  # fmt: skip
    stats = total([a, b], "h:20")
    assert (stats.connections, stats.subscriptions) == (5, {"BTCUSDT:1m": 4, "ETHUSDT:1m": 1})
    assert (stats.messages_in, stats.messages_out, stats.updates_in, stats.updates_out) == (20, 50, 22, 55)
    assert (stats.coalesced, stats.dropped, stats.slow_disconnects, stats.invalid_messages) == (1, 2, 1, 3)
    assert (stats.redis.connected, stats.redis.reconnects) == (False, 2)  # connected only when every worker is
    assert (stats.last_delay_ms, stats.uptime_s) == (6, 9.5)  # the largest delay, the oldest worker
    assert (stats.worker, [w.worker for w in stats.workers]) == ("h:20", ["h:20", "h:7"])


def test_one_worker_is_its_own_total() -> None:
    only = _worker(5, connections=1, subscriptions={"X:1s": 1}, messages_in=4, last_delay_ms=None)
    stats = total([only], "h:5")
    assert (stats.connections, stats.subscriptions, stats.messages_in, stats.last_delay_ms) == (1, {"X:1s": 1}, 4, None)
    assert stats.workers == [only]


@pytest.mark.parametrize(
    ("requested", "available", "spreads", "expected"),
    [(0, 4, True, 4), (3, 4, True, 3), (1, 8, True, 1), (0, 4, False, 1), (6, 8, False, 1)],
)
def test_worker_count(requested: int, available: int, spreads: bool, expected: int) -> None:
    assert worker_count(requested, available, spreads) == expected


def test_only_linux_spreads_a_port_over_processes() -> None:
    assert [spreads_connections(p) for p in ("linux", "darwin", "win32")] == [
        hasattr(socket, "SO_REUSEPORT"),
        False,
        False,
    ]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreads connections on Linux only")
def test_workers_sockets_share_one_port_that_nothing_else_may_take() -> None:
    socks = listening_sockets("127.0.0.1", 0, 3)
    try:
        ports = {s.getsockname()[1] for s in socks}
        assert len(ports) == 1 and all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in socks)
        with pytest.raises(OSError):  # a second relay on the same port is refused, not let in to share it
            listening_sockets("127.0.0.1", ports.pop(), 2)
    finally:
        for s in socks:
            s.close()

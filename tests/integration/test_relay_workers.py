"""``python -m backend api --workers 2``: two real uvicorn processes on one port, real Redis, real WebSocket clients.

The kernel spreads the connections over the workers by a hash of their addresses; the tests open
clients until both workers hold some (they read that from ``/ws/stats``, which each worker answers
for all), so every check below runs across two processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import websocket

from backend.config import Settings
from tests.stack import (
    Publisher,
    Server,
    WsClient,
    descendants,
    isolated_settings,
    make_candle,
    relay_in_process,
    start_relay,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="several workers share a port on Linux only"),
    pytest.mark.skipif(relay_in_process(), reason="workers are processes (make mutate serves the relay on a thread)"),
]

T0 = 1_732_665_600_000  # a minute boundary
SYMBOL = "WORKUSDT"
BATCH = 8  # clients opened between two looks at how they are spread
MOST = 96  # the chance that 96 connections all hash to one of two sockets is 2**-95
CONNECT_TIMEOUT_S = 60  # a replacement worker starting on a loaded machine; the deadline only stops a broken run


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return isolated_settings(redis_url, tmp_path, workers=2)


@pytest.fixture
def relay(settings: Settings) -> Iterator[Server]:
    with start_relay(settings, log_dir=settings.data_dir, timeout=60) as server:
        server.wait_until(lambda: len(server.worker_pids()) == 2, 60, "two workers reporting")
        yield server


@pytest.fixture
def publisher(settings: Settings) -> Iterator[Publisher]:
    pub = Publisher(settings)
    yield pub
    pub.close()


def subscribed_client(relay: Server) -> WsClient:
    client = WsClient(relay.ws_url, timeout=CONNECT_TIMEOUT_S)
    client.subscribe([SYMBOL], ["1m"], timeout=CONNECT_TIMEOUT_S)
    return client


def wait_reported(relay: Server, connections: int) -> None:
    """Until the workers' figures (each reports every second) count ``connections`` in all."""
    relay.wait_until(lambda: relay.stats()["connections"] == connections, 20, f"{connections} connections reported")


def clients_on_every_worker(relay: Server) -> list[WsClient]:
    """Subscribed clients, opened a batch at a time until every worker reports some of them."""
    clients: list[WsClient] = []
    while len(clients) < MOST:
        clients += [subscribed_client(relay) for _ in range(BATCH)]
        wait_reported(relay, len(clients))
        if all(w["connections"] > 0 for w in relay.stats()["workers"]):
            return clients
    raise AssertionError(f"{MOST} connections all went to one worker: {relay.stats()['workers']}")


def test_workers_share_the_port_and_each_client_gets_every_update_once_in_order(
    relay: Server, publisher: Publisher, settings: Settings
) -> None:
    clients = clients_on_every_worker(relay)
    try:
        stats = relay.stats()
        assert len(stats["workers"]) == 2
        assert stats["worker"] in {w["worker"] for w in stats["workers"]}  # whichever answered speaks for both
        assert stats["subscriptions"] == {f"{SYMBOL}:1m": len(clients)}
        assert sum(w["subscriptions"][f"{SYMBOL}:1m"] for w in stats["workers"]) == len(clients)
        # one Redis subscription per worker, however many clients
        r = redis.Redis.from_url(settings.redis_url or "")
        try:
            assert r.pubsub_numsub(settings.updates_channel) == [(settings.updates_channel.encode(), 2)]
        finally:
            r.close()
        for seq in range(1, 41):
            publisher.publish(make_candle(SYMBOL, "1m", T0, seq=seq, close=100 + seq))
        for client in clients:
            assert [c["seq"] for c in client.candles(40)] == list(range(1, 41))
            client.send({"op": "ping"})  # nothing else was queued for it: each update came exactly once
            assert client.recv(10) == {"type": "pong"}
        relay.wait_until(lambda: relay.stats()["updates_out"] == 40 * len(clients), 20, "the workers' figures")
        assert relay.stats()["messages_in"] == 2 * 40  # each worker heard each message once
        metrics = relay.get("/metrics").text
        assert "candles_relay_workers 2.0" in metrics
        assert f"candles_relay_connections {float(len(clients))}" in metrics
        for pid in relay.worker_pids():
            assert f'candles_relay_worker_connections{{worker="{_host(relay)}:{pid}"}}' in metrics
    finally:
        for client in clients:
            client.close()


def test_a_killed_worker_is_replaced_and_its_clients_reconnect(relay: Server, publisher: Publisher) -> None:
    clients = clients_on_every_worker(relay)
    try:
        victim = next(w for w in relay.stats()["workers"] if w["connections"] > 0)
        os.kill(victim["pid"], signal.SIGKILL)
        publisher.publish(make_candle(SYMBOL, "1m", T0, seq=1))
        survivors, cut = [], []
        for client in clients:  # a client of the dead worker reads the end of its connection, the others seq 1
            try:
                frames = client.candles(1)
            except (websocket.WebSocketException, OSError):
                cut.append(client)
            else:
                assert [c["seq"] for c in frames] == [1]
                survivors.append(client)
        assert len(cut) == victim["connections"]
        reconnected = [subscribed_client(relay) for _ in cut]  # as a real client does, on the same port
        relay.wait_until(
            lambda: len(relay.worker_pids()) == 2 and victim["pid"] not in relay.worker_pids(),
            CONNECT_TIMEOUT_S,
            "a replacement worker",
        )
        assert relay.process.poll() is None  # the supervisor lives on
        publisher.publish(make_candle(SYMBOL, "1m", T0, seq=2))
        for client in survivors + reconnected:
            assert [c["seq"] for c in client.candles(1, timeout=CONNECT_TIMEOUT_S)] == [2]
        wait_reported(relay, len(clients))
        clients += reconnected
    finally:
        for client in clients:
            client.close()


def _host(relay: Server) -> str:
    return relay.stats()["worker"].rsplit(":", 1)[0]


def catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (Linux's ``SigCgt`` mask in ``/proc``)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(mask >> (signal.SIGTERM - 1) & 1)


def workers_of(pid: int) -> list[int]:
    """The relay worker processes under ``pid``."""
    found = []
    for child in descendants(pid):
        with contextlib.suppress(OSError):
            if b"backend.relay.worker" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
    return found


@pytest.mark.parametrize("workers", [1, 2])
def test_a_relay_stopped_while_it_is_still_starting_stops_at_once(redis_url: str, tmp_path: Path, workers: int) -> None:
    """SIGTERM in the second or so a relay process spends loading its app, before uvicorn listens for signals:
    it stops as soon as it is up (it used to swallow the signal: a lone relay served on, and a supervisor stopping
    its workers waited 15 s for each and killed it)."""
    import subprocess
    import time

    from tests.stack import clean_environ, free_port, settings_env

    settings = isolated_settings(redis_url, tmp_path, workers=workers).model_copy(update={"api_port": free_port()})
    proc = subprocess.Popen([sys.executable, "-m", "backend", "api"], env=clean_environ(settings_env(settings)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        if workers == 1:  # the lone relay: as soon as it catches SIGTERM, it is loading the app
            while not catches_sigterm(proc.pid):
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.002)
        else:  # the supervisor: stopped when its workers catch SIGTERM, which they do while loading the app
            while len(kids := workers_of(proc.pid)) < workers or not all(catches_sigterm(k) for k in kids):
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.002)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert time.monotonic() - started < 10, "stopped only after a timeout"
    finally:
        proc.kill()
        proc.wait()

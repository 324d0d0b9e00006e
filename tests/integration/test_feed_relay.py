"""The listener and the REST client against a real relay (``python -m backend api`` on Redis)."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
import websocket

from backend.config import Settings
from backend.models import AlertEvent, Candle, encode_batch, now_ms
from services.client import RelayClient, RelayDown, RelayError
from services.feed.feed import Feed
from services.feed.queue import Drained, SessionQueue
from tests.proxy import TcpProxy
from tests.stack import (
    Publisher,
    Server,
    cache_candles,
    free_port,
    isolated_settings,
    make_candle,
    relay_scope,
    start_relay,
)

pytestmark = pytest.mark.integration

STREAM = ("BTCUSDT", "1m")
MINUTE = 60_000


@pytest.fixture(scope="module")
def relay_settings(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return isolated_settings(redis_url, tmp_path_factory.mktemp("feed-relay"))


@pytest.fixture(scope=relay_scope)
def relay(relay_settings: Settings) -> Iterator[Server]:
    server = start_relay(relay_settings)
    yield server
    server.stop()


@pytest.fixture
def publisher(relay_settings: Settings) -> Iterator[Publisher]:
    p = Publisher(relay_settings)
    yield p
    p.close()


@pytest.fixture
def feed_factory() -> Iterator[Callable[[str], Feed]]:
    feeds: list[Feed] = []

    def make(url: str, recv_timeout_s: float = 2.0) -> Feed:
        f = Feed(url, backoff_initial=0.1, backoff_max=0.5, recv_timeout_s=recv_timeout_s).start()
        feeds.append(f)
        return f

    yield make
    for f in feeds:
        f.stop(timeout=3)


def wait_for(check: Callable[[], object], timeout: float = 10, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"no {what} within {timeout} s")


def collect(q: SessionQueue, until: Callable[[Drained, list[Candle]], bool], timeout: float = 10) -> list[Candle]:
    got: list[Candle] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = q.drain()
        got.extend(d.candles)
        if until(d, got):
            return got
        time.sleep(0.02)
    raise AssertionError(f"queue did not get there; got {[(c.open_time, c.seq) for c in got]}")


def history(symbol: str, t0: int, n: int, first_seq: int) -> list[Candle]:
    """``n`` closed 1m candles then one forming candle."""
    out = [
        make_candle(symbol, "1m", t0 + i * MINUTE, seq=first_seq + i, close=100.0 + i, closed=True) for i in range(n)
    ]
    out.append(make_candle(symbol, "1m", t0 + n * MINUTE, seq=first_seq + n, close=100.0 + n))
    return out


def start_minute(back: int) -> int:
    return (now_ms() // MINUTE - back) * MINUTE


def test_rest_client_reads_snapshot_symbols_and_history(relay: Server, publisher: Publisher) -> None:
    t0 = start_minute(10)
    publisher.publish(*history("SOLUSDT", t0, 4, 1))
    client = RelayClient(relay.url)
    try:
        symbols, intervals = client.symbols()
        assert "SOLUSDT" in symbols and "1m" in intervals
        candles = client.candles("SOLUSDT", "1m", limit=50)
        assert [c.open_time for c in candles] == [t0 + i * MINUTE for i in range(5)]
        assert candles[-1].closed is False and all(isinstance(c, Candle) for c in candles)
        assert client.health()["status"] in {"ok", "degraded"}
        assert "connections" in client.ws_stats()
        assert "relay" in client.stats()
        with pytest.raises(RelayError, match="HTTP 422"):
            client.candles("SOLUSDT", "7m")
    finally:
        client.close()
    down = RelayClient(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RelayDown, match="connection refused"):
        down.symbols()
    down.close()


def test_listener_snapshot_then_live_updates(relay: Server, publisher: Publisher, feed_factory) -> None:
    t0 = start_minute(20)
    publisher.publish(*history("BTCUSDT", t0, 5, 1))
    feed = feed_factory(relay.url)
    q = feed.register("session-a")
    feed.want(q, {STREAM})
    assert feed.wait_loaded([STREAM], timeout=10)
    assert STREAM in q.drain().resync, "the session redraws from the snapshot"
    assert feed.rest.snapshots == 1
    rows = feed.book(STREAM).tail()
    assert [c.open_time for c in rows][-6:] == [t0 + i * MINUTE for i in range(6)]
    forming = make_candle("BTCUSDT", "1m", t0 + 5 * MINUTE, seq=7, close=123.0)
    publisher.publish(forming)
    got = collect(q, lambda d, got: any(c.seq == 7 for c in got))
    assert got[-1].close == 123.0 and got[-1].emitted_at > 0
    wait_for(lambda: feed.book(STREAM).last.seq == 7, what="book update")
    status = feed.status()
    assert status.live and status.latency_ms["p50"] is not None and status.streams == 1


def test_a_seq_gap_triggers_a_resync_that_fills_the_hole(
    relay: Server, publisher: Publisher, relay_settings: Settings, feed_factory
) -> None:
    t0 = start_minute(40)
    publisher.publish(*history("ETHUSDT", t0, 3, 1))  # seq 1..4, forming at t0+3m
    stream = ("ETHUSDT", "1m")
    feed = feed_factory(relay.url)
    q = feed.register("session-b")
    feed.want(q, {stream})
    assert feed.wait_loaded([stream], timeout=10)
    q.drain()
    # seq 5 closes the forming candle, but only reaches Redis's cache: the listener never sees it
    missed = make_candle("ETHUSDT", "1m", t0 + 3 * MINUTE, seq=5, close=200.0, closed=True)
    cache_candles(relay_settings, missed)
    publisher.publish(make_candle("ETHUSDT", "1m", t0 + 4 * MINUTE, seq=6, close=201.0))
    collect(q, lambda d, got: stream in d.resync)
    assert feed.listener.gaps >= 1

    def hole_filled() -> bool:
        rows = {c.open_time: c for c in feed.book(stream).tail()}
        c = rows.get(t0 + 3 * MINUTE)
        return c is not None and c.closed and c.close == 200.0 and feed.book(stream).synced

    wait_for(hole_filled, what="the missed candle from the fresh snapshot")
    assert feed.rest.snapshots == 2, "the first snapshot, then the patch"
    assert [c.open_time for c in feed.book(stream).tail()][-5:] == [t0 + i * MINUTE for i in range(5)]


def test_reconnect_after_an_outage_marks_sessions_and_catches_up(
    relay: Server, publisher: Publisher, feed_factory
) -> None:
    t0 = start_minute(60)
    publisher.publish(*history("XRPUSDT", t0, 2, 1))
    stream = ("XRPUSDT", "1m")
    port = int(relay.url.rsplit(":", 1)[1])
    proxy = TcpProxy("127.0.0.1", port)
    try:
        feed = feed_factory(f"http://127.0.0.1:{proxy.port}")
        q = feed.register("session-c")
        feed.want(q, {stream})
        assert feed.wait_loaded([stream], timeout=10)
        generation = feed.state.connection.generation
        proxy.cut()
        down = wait_for(lambda: feed.status().state == "down", what="the outage noticed")
        assert down and feed.status().error
        publisher.publish(make_candle("XRPUSDT", "1m", t0 + 2 * MINUTE, seq=4, close=150.0, closed=True))
        assert "TRXUSDT" not in feed.symbols
        publisher.publish(make_candle("TRXUSDT", "1m", t0, seq=1))  # a new symbol during the outage
        proxy.restore()
        wait_for(
            lambda: feed.status().live and feed.state.connection.generation > generation, timeout=15, what="a reconnect"
        )
        assert feed.state.connection.reconnects >= 1
        collect(q, lambda d, got: d.reconnected)
        wait_for(lambda: "TRXUSDT" in feed.symbols, what="the symbols fetched again on the reconnect")
        wait_for(lambda: feed.book(stream).synced and feed.book(stream).last.seq == 4, what="catch-up snapshot")
        publisher.publish(make_candle("XRPUSDT", "1m", t0 + 3 * MINUTE, seq=5, close=151.0))
        collect(q, lambda d, got: any(c.seq == 5 for c in got))
    finally:
        proxy.cut()


def test_subscriptions_follow_live_sessions(relay: Server, publisher: Publisher, feed_factory) -> None:
    t0 = start_minute(80)
    publisher.publish(*history("DOGEUSDT", t0, 1, 1))
    stream = ("DOGEUSDT", "1m")
    feed = feed_factory(relay.url)
    wait_for(lambda: feed.status().live, what="connection")
    a, b = feed.register("a"), feed.register("b")
    feed.want(a, {stream})
    feed.want(b, {stream})

    def relay_subs() -> dict[str, int]:
        return relay.stats().get("subscriptions") or {}

    wait_for(lambda: relay_subs().get("DOGEUSDT:1m"), what="the relay subscription")
    assert feed.subscribed() == {stream}
    a.close()
    assert feed.subscribed() == {stream}, "one session still wants it"
    b.close()
    wait_for(lambda: not relay_subs().get("DOGEUSDT:1m"), what="the unsubscribe")
    assert feed.subscribed() == set() and feed.sessions() == []


def test_a_quiet_relay_is_pinged_not_dropped(relay: Server, feed_factory) -> None:
    feed = feed_factory(relay.url, recv_timeout_s=0.2)  # nobody wants a stream: no data frames at all
    wait_for(lambda: feed.status().live, what="connection")
    # more answered pings than the three silent timeouts that would drop the connection
    wait_for(lambda: feed.listener.pongs >= 5, what="five pongs")
    assert feed.status().live and feed.state.connection.reconnects == 0


def test_an_absent_relay_is_reported_plainly(feed_factory, tmp_path: Path) -> None:
    feed = feed_factory(f"http://127.0.0.1:{free_port()}")
    status = wait_for(lambda: (s := feed.status()).state == "down" and s, what="down state")
    assert status.error == "connection refused"
    assert status.next_attempt_at is not None
    wait_for(lambda: feed.status().attempts >= 2, what="a second attempt")
    assert feed.status().state == "down" and feed.status().reconnects == 0


def test_symbols_and_stats_come_from_the_relay(relay: Server, publisher: Publisher) -> None:
    t0 = start_minute(100)
    publisher.publish(*history("ADAUSDT", t0, 1, 1))
    feed = Feed(relay.url, backoff_initial=0.1, backoff_max=0.5, stats_every_s=0.2).start()
    try:
        assert "ADAUSDT" in feed.wait_symbols(10)
        assert "1m" in feed.intervals and feed.rest.symbols_error is None
        q = feed.register("system")
        feed.want(q, set(), stats=True, page="system")
        wait_for(lambda: len(feed.stats_history) >= 2, what="two stats samples")
        sample = feed.stats
        assert sample is not None and sample.error is None
        assert sample.stats is not None and "relay" in sample.stats
        assert sample.ws_stats is not None and "connections" in sample.ws_stats
        first, second = list(feed.stats_history)[:2]
        assert second.at_ms - first.at_ms >= 190, "one sample per stats_every_s (0.2 s)"
    finally:
        feed.stop(timeout=3)


def test_alerts_reach_every_session(relay: Server, relay_settings: Settings, feed_factory) -> None:
    feed = feed_factory(relay.url)
    q = feed.register("any page")
    wait_for(
        lambda: any(m["type"] == "subscribed" and m.get("alerts") for m in list(feed.listener.control)),
        what="the subscription to every alert",
    )
    alert = AlertEvent(rule_id=3, symbol="NEARUSDT", interval="1m", kind="price_above", threshold=5.0,
                       value=5.5, message="NEARUSDT crossed above 5", fired_at=now_ms())  # fmt: skip
    r = redis.Redis.from_url(relay_settings.redis_url or "")
    try:
        r.publish(relay_settings.alerts_channel, encode_batch([alert]))
    finally:
        r.close()
    got = wait_for(lambda: q.drain().alerts, what="the alert in the session's queue")
    assert [a.message for a in got] == ["NEARUSDT crossed above 5"]
    assert list(feed.listener.alerts) == [alert]


def test_a_relay_with_a_token(redis_url: str, tmp_path: Path) -> None:
    settings = isolated_settings(redis_url, tmp_path, api_token="s3cret-token")
    server = start_relay(settings)
    try:
        without = Feed(server.url, backoff_initial=5, backoff_max=5).start()
        try:
            status = wait_for(lambda: (s := without.status()).state == "down" and s, what="the refusal")
            assert status.error == "the relay refused the token (HTTP 401)"
        finally:
            without.stop(timeout=3)
        t0 = start_minute(120)
        publisher = Publisher(settings)
        publisher.publish(*history("LINKUSDT", t0, 2, 1))
        publisher.close()
        feed = Feed(server.url, "s3cret-token", backoff_initial=0.1, backoff_max=0.5).start()
        try:
            q = feed.register("s")
            feed.want(q, {("LINKUSDT", "1m")})
            assert feed.wait_loaded([("LINKUSDT", "1m")], timeout=10)
            assert [c.seq for c in feed.book(("LINKUSDT", "1m")).tail()] == [1, 2, 3]
            assert feed.status().live
        finally:
            feed.stop(timeout=3)
    finally:
        server.stop()


def test_a_cut_connection_is_reported_and_retried_after_the_backoff(relay: Server) -> None:
    port = int(relay.url.rsplit(":", 1)[1])
    proxy = TcpProxy("127.0.0.1", port)
    feed = Feed(f"http://127.0.0.1:{proxy.port}", backoff_initial=20, backoff_max=20).start()
    try:
        wait_for(lambda: feed.status().live, what="connection")
        before = time.time()
        proxy.cut()
        status = wait_for(lambda: (s := feed.status()).state == "down" and s, what="the outage noticed")
        assert status.error == "connection lost"
        assert status.next_attempt_at is not None and status.next_attempt_at >= before + 10
        assert status.down_since is not None and status.down_since >= before and status.connected_since is None
        assert status.attempts == 1
    finally:
        feed.stop(timeout=3)
        proxy.cut()
    assert feed.status().state == "stopped"


def test_a_hung_relay_is_left_after_its_silent_timeouts(relay: Server) -> None:
    port = int(relay.url.rsplit(":", 1)[1])
    proxy = TcpProxy("127.0.0.1", port)
    feed = Feed(f"http://127.0.0.1:{proxy.port}", backoff_initial=0.1, backoff_max=0.1, recv_timeout_s=0.2).start()
    try:
        wait_for(lambda: feed.status().live, what="connection")
        proxy.hang()  # connected, and nothing comes back, not even a pong
        status = wait_for(lambda: (s := feed.status()).state == "down" and s, what="the silence noticed")
        assert status.error == "the relay stopped answering"
        # the next attempt connects and hears nothing either: its handshake times out
        wait_for(lambda: feed.status().error == "timed out", what="the handshake's timeout")
    finally:
        feed.stop(timeout=3)
        proxy.resume()
        proxy.cut()


def test_a_relay_that_shuts_down_closes_the_connection(relay_settings: Settings, tmp_path: Path) -> None:
    server = start_relay(relay_settings, log_dir=tmp_path)
    feed = Feed(server.url, backoff_initial=20, backoff_max=20).start()
    try:
        wait_for(lambda: feed.status().live, what="connection")
        server.stop()
        status = wait_for(lambda: (s := feed.status()).state == "down" and s, what="the close noticed")
        assert status.error == "the relay closed the connection"
    finally:
        feed.stop(timeout=3)
        server.stop()


def test_stop_ends_both_threads_without_waiting_for_a_receive_timeout(relay: Server) -> None:
    feed = Feed(relay.url, recv_timeout_s=60).start()
    wait_for(lambda: feed.status().live, what="connection")
    threads = list(feed._threads)
    assert sorted(t.name for t in threads) == ["candles-feed-listener", "candles-feed-worker"]
    assert all(t.daemon for t in threads)
    assert feed.start()._threads == threads, "started once"
    feed.stop(timeout=10)
    assert [t.is_alive() for t in threads] == [False, False]
    assert feed.status().state == "stopped" and feed.client._http.is_closed


def test_a_reconnect_replaces_the_book_by_a_full_snapshot(relay: Server, publisher: Publisher) -> None:
    t0 = start_minute(140)
    stream = ("AVAXUSDT", "1m")
    publisher.publish(*history("AVAXUSDT", t0, 2, 1))  # seq 1, 2 closed, 3 forming
    port = int(relay.url.rsplit(":", 1)[1])
    proxy = TcpProxy("127.0.0.1", port)
    feed = Feed(f"http://127.0.0.1:{proxy.port}", book_limit=3, backoff_initial=0.1, backoff_max=0.5).start()
    try:
        q = feed.register("s")
        feed.want(q, {stream})
        assert feed.wait_loaded([stream], timeout=10)
        assert [c.seq for c in feed.book(stream).tail()] == [1, 2, 3]
        proxy.cut()
        wait_for(lambda: feed.status().state == "down", what="the outage noticed")
        publisher.publish(
            make_candle("AVAXUSDT", "1m", t0 + 2 * MINUTE, seq=4, close=102.0, closed=True),
            make_candle("AVAXUSDT", "1m", t0 + 3 * MINUTE, seq=5, close=103.0, closed=True),
            make_candle("AVAXUSDT", "1m", t0 + 4 * MINUTE, seq=6, close=104.0),
        )
        proxy.restore()
        wait_for(lambda: feed.book(stream).synced and feed.book(stream).last.seq == 6, what="the full snapshot")
        assert [c.seq for c in feed.book(stream).tail()] == [4, 5, 6], "the newest three, nothing older kept"
    finally:
        feed.stop(timeout=3)
        proxy.cut()


class SilentRelay:
    """A WebSocket server that takes the handshake, then answers at most ``pongs`` pings and nothing else.

    It records the opcode of every frame the client sends, until the client's close frame: how many
    silent receive timeouts the listener sits through shows as the pings it sent. (The real relay
    always answers a ping; a cut or hung connection carries no frames to count.)
    """

    GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, pongs: int = 0, *, first: bytes = b"") -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self.pongs = pongs
        self.first = first  # raw bytes sent once after the handshake (a frame of its own)
        self.opcodes: list[int] = []
        self.closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self._server.accept()
        with conn, conn.makefile("rb") as f:
            key = ""
            while (line := f.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.strip().lower() == "sec-websocket-key":
                    key = value.strip()
            accept = base64.b64encode(hashlib.sha1((key + self.GUID).encode()).digest()).decode()
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
            )
            if self.first:
                conn.sendall(self.first)
            while len(header := f.read(2)) == 2:
                opcode, size = header[0] & 0x0F, header[1] & 0x7F
                if size == 126:
                    size = int.from_bytes(f.read(2), "big")
                elif size == 127:
                    size = int.from_bytes(f.read(8), "big")
                f.read(4 + size)  # the mask and the payload
                self.opcodes.append(opcode)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
                if opcode == websocket.ABNF.OPCODE_PING and self.pongs > 0:
                    self.pongs -= 1
                    conn.sendall(bytes([0x80 | websocket.ABNF.OPCODE_PONG, 0]))
        self._server.close()
        self.closed.set()


TEXT, PING, PONG, CLOSE = (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG,
                           websocket.ABNF.OPCODE_CLOSE)  # fmt: skip


@pytest.mark.parametrize(
    ("pongs", "ping", "frames"),
    [
        (0, False, [TEXT, PING, PING, CLOSE]),  # three silent timeouts: two pings, then the listener leaves
        (1, False, [TEXT, PING, PING, PING, CLOSE]),  # a pong starts the count again
        (0, True, [TEXT, PONG, PING, PING, CLOSE]),  # the relay's own ping is answered, and the listener stays
    ],
)
def test_the_listener_leaves_after_three_silent_receive_timeouts(pongs: int, ping: bool, frames: list[int]) -> None:
    silent = SilentRelay(pongs, first=bytes([0x80 | PING, 2]) + b"hi" if ping else b"")
    feed = Feed(silent.url, backoff_initial=20, backoff_max=20, recv_timeout_s=0.1).start()
    try:
        assert silent.closed.wait(30), "the listener never left"
        assert silent.opcodes == frames  # the first text frame: the subscription to every alert
        status = wait_for(lambda: (s := feed.status()).state == "down" and s, what="the outage noticed")
        assert status.error == "the relay stopped answering" and feed.listener.pongs == pongs
        assert feed.listener.frames == 0, "a ping or pong is no message"
    finally:
        feed.stop(timeout=3)


class OneStatsEndpoint(BaseHTTPRequestHandler):
    """Answers one of the relay's two stats paths (``server.path``), 404 to everything else: a relay of another
    version, where exactly one of the two requests of a stats sample fails."""

    def do_GET(self) -> None:
        ok = self.path == self.server.path  # type: ignore[attr-defined]
        body = json.dumps({"connections": 2} if ok else {"detail": "Not Found"}).encode()
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("path", ["/ws/stats", "/api/v1/stats"])
def test_a_stats_sample_keeps_what_it_could_read_and_the_error_of_the_rest(path: str) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), OneStatsEndpoint)
    server.path = path  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    feed = Feed(f"http://127.0.0.1:{server.server_address[1]}")
    try:
        feed.rest._fetch_stats()
        sample = feed.stats
        assert sample is not None
        assert sample.error == "the relay does not know that (HTTP 404): Not Found"
        read = {"connections": 2}
        assert (sample.stats, sample.ws_stats) == ((None, read) if path == "/ws/stats" else (read, None))
    finally:
        feed.client.close()
        server.shutdown()
        server.server_close()


def test_snapshots_fetch_as_many_candles_as_asked_of_their_own_interval(
    relay: Server, publisher: Publisher, relay_settings: Settings
) -> None:
    five = 5 * MINUTE
    t0 = (now_ms() // five - 700) * five
    stream = ("DOTUSDT", "5m")

    def c5(i: int, seq: int, *, closed: bool = True) -> Candle:
        return make_candle("DOTUSDT", "5m", t0 + i * five, seq=seq, close=200.0 + i, closed=closed)

    publisher.publish(*history("DOTUSDT", t0, 3, 1))  # the same symbol's 1m stream: not this book's
    publisher.publish(*[c5(i, i + 1) for i in range(600)], c5(600, 601, closed=False))  # seq 1..601
    feed = Feed(relay.url, book_limit=600, backoff_initial=0.1, backoff_max=0.5).start()  # more than 500
    try:
        q = feed.register("s")
        feed.want(q, {stream})
        assert feed.wait_loaded([stream], timeout=10)
        rows = feed.book(stream).tail()
        assert [c.seq for c in rows] == list(range(2, 602)), "the newest 600"
        assert {c.interval for c in rows} == {"5m"}
        cache_candles(relay_settings, c5(600, 602))  # the close of candle 600 reaches only the cache
        publisher.publish(c5(601, 603, closed=False))
        wait_for(lambda: feed.rest.snapshots == 2 and feed.book(stream).synced, what="the patch")
        assert [c.seq for c in feed.book(stream).tail()] == [*range(2, 601), 602, 603]
    finally:
        feed.stop(timeout=3)


def test_the_snapshot_sets_the_seq_a_gap_is_counted_from(
    relay: Server, publisher: Publisher, relay_settings: Settings
) -> None:
    t0 = start_minute(160)
    stream = ("BNBUSDT", "1m")
    closed = [make_candle("BNBUSDT", "1m", t0 + i * MINUTE, seq=i + 1, closed=True) for i in range(3)]
    cache_candles(relay_settings, *closed)
    r = redis.Redis.from_url(relay_settings.redis_url or "")
    try:  # the latest candle's key expired (a quiet stream): a subscription gets no candle, only the snapshot
        r.delete(f"{relay_settings.redis_prefix}:latest:BNBUSDT:1m")
    finally:
        r.close()
    feed = Feed(relay.url, backoff_initial=0.1, backoff_max=0.5).start()
    try:
        q = feed.register("s")
        feed.want(q, {stream})
        assert feed.wait_loaded([stream], timeout=10)
        assert [c.seq for c in feed.book(stream).tail()] == [1, 2, 3]
        q.drain()
        publisher.publish(make_candle("BNBUSDT", "1m", t0 + 4 * MINUTE, seq=5))  # seq 4 never came
        collect(q, lambda d, got: stream in d.resync)
        assert feed.listener.gaps == 1
    finally:
        feed.stop(timeout=3)


def test_a_frame_the_listener_cannot_read_ends_the_connection_with_the_reason() -> None:
    silent = SilentRelay(first=bytes([0x83, 0]))  # opcode 3 is reserved
    feed = Feed(silent.url, backoff_initial=20, backoff_max=20).start()
    try:
        status = wait_for(lambda: (s := feed.status()).state == "down" and s, what="the outage noticed")
        assert status.error == "connection lost: Invalid opcode 3"
    finally:
        feed.stop(timeout=3)

"""The relay's routing and per-client buffers, without a server: what each client would be sent."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import msgspec
import pytest

from backend.config import Settings
from backend.models import AlertEvent, encode_batch, encode_message
from backend.relay.client import BUFFER_PER_STREAM, BUFFER_SPARE, Client
from backend.relay.heads import newest
from backend.relay.hub import Hub
from tests.stack import isolated_settings, make_candle, settings_env

T0 = 1_732_665_600_000


async def _nothing(_message: dict[str, Any]) -> None:
    return None


@pytest.fixture
def hub(tmp_path: Path) -> Hub:
    return Hub(isolated_settings("redis://127.0.0.1:1/0", tmp_path))  # Redis is never contacted here


def attach(hub: Hub, *streams: str) -> Client:
    client = Client(hub, _nothing, "test")
    hub.clients.add(client)
    for key in streams:
        client.streams.add(key)
        hub.subscribers.setdefault(key, set()).add(client)
    return client


def dispatch(hub: Hub, *candles: Any) -> list[bytes]:
    """Route one Redis message inside a running loop, like the subscriber task does."""
    asyncio.run(_dispatch(hub, encode_batch(candles)))
    return [encode_message(c) for c in candles]


async def _dispatch(hub: Hub, data: bytes) -> None:
    hub.dispatch(data)


def test_a_client_that_keeps_up_gets_every_update_in_order(hub: Hub) -> None:
    a = attach(hub, "BTCUSDT:1m")
    b = attach(hub, "ETHUSDT:1m")
    sent = []
    for seq in range(1, 6):
        sent += dispatch(hub, make_candle("BTCUSDT", "1m", T0, seq=seq), make_candle("ETHUSDT", "1m", T0, seq=seq))
    assert a.take() == tuple(sent[0::2]) and b.take() == tuple(sent[1::2])
    assert hub.coalesced == 0 and a.take() == ()


def test_a_slow_client_keeps_only_the_newest_candle_of_each_stream_and_every_alert(hub: Hub) -> None:
    client = attach(hub, "BTCUSDT:1m", "ETHUSDT:1m")
    limit = BUFFER_PER_STREAM * 2 + BUFFER_SPARE
    alert = AlertEvent(rule_id=1, symbol="BTCUSDT", interval="1m", kind="price_above", threshold=1.0, value=2.0,
                       message="up", fired_at=T0)  # fmt: skip
    dispatch(hub, alert)
    last: list[bytes] = []
    for seq in range(1, limit):
        last = dispatch(hub, make_candle("BTCUSDT", "1m", T0, seq=seq), make_candle("ETHUSDT", "1m", T0, seq=seq))
    assert client.latest_only is not None  # more waited than a couple of messages' worth: coalescing
    assert client.take() == (encode_message(alert), *last)
    assert hub.coalesced == 2 * (limit - 2)
    assert client.latest_only is None  # caught up: every update again


def test_one_big_message_is_never_coalesced(hub: Hub) -> None:
    """A replay flush can carry many closes of one stream: a client that was not behind gets them all."""
    client = attach(hub, "BTCUSDT:1s")
    sent = dispatch(hub, *(make_candle("BTCUSDT", "1s", T0 + i * 1000, seq=i, closed=True) for i in range(100)))
    assert client.take() == tuple(sent) and hub.coalesced == 0


def test_a_snapshot_takes_the_unsent_updates_of_its_stream(hub: Hub) -> None:
    client = attach(hub, "BTCUSDT:1m", "ETHUSDT:1m")
    btc = dispatch(hub, make_candle("BTCUSDT", "1m", T0, seq=1))
    eth = dispatch(hub, make_candle("ETHUSDT", "1m", T0, seq=1))
    btc2 = dispatch(hub, make_candle("BTCUSDT", "1m", T0, seq=2))
    assert client.take_stream("BTCUSDT:1m") == btc2[0] and btc[0] != btc2[0]
    assert client.take() == tuple(eth)
    assert hub.latest["BTCUSDT:1m"] == btc2[0]


def test_a_snapshot_that_takes_a_slow_clients_last_updates_ends_its_slow_mode(hub: Hub) -> None:
    """Updates that piled up behind a snapshot (coalesced) and went into it leave nothing unsent: the next
    update is sent at once, and the client is not behind (it stayed in slow mode, its updates waited unsent
    until something else woke its sender, and the watchdog counted it behind since the first of them)."""
    client = attach(hub, "BTCUSDT:1m")
    client.hold += 1  # a snapshot in preparation: updates wait behind it
    for seq in range(1, BUFFER_PER_STREAM + BUFFER_SPARE + 3):
        piled = dispatch(hub, make_candle("BTCUSDT", "1m", T0, seq=seq))
    assert client.latest_only is not None  # fell behind: coalescing
    assert client.take_stream("BTCUSDT:1m") == piled[0]
    client.hold -= 1
    assert client.unsent == 0 and client.lag(1e12) == 0.0
    client.wake.clear()
    after = dispatch(hub, make_candle("BTCUSDT", "1m", T0, seq=99))
    assert client.wake.is_set()  # flushed: the sender sends it now
    assert client.take() == tuple(after)


def test_an_older_period_is_delivered_but_does_not_become_the_streams_latest(hub: Hub) -> None:
    """An exchange's final candle for a period the clock closed comes after newer ones: subscribers get it, and
    a snapshot still starts from the newest period."""
    client = attach(hub, "BTCUSDT:1m")
    forming = dispatch(hub, make_candle("BTCUSDT", "1m", T0 + 120_000, seq=7))
    final = dispatch(hub, make_candle("BTCUSDT", "1m", T0, seq=8, closed=True))
    assert client.take() == (*forming, *final)
    assert hub.latest["BTCUSDT:1m"] == forming[0] and hub.latest_open["BTCUSDT:1m"] == T0 + 120_000
    again = dispatch(hub, make_candle("BTCUSDT", "1m", T0 + 120_000, seq=9))  # the same period again: it replaces
    assert hub.latest["BTCUSDT:1m"] == again[0]


def test_newest_orders_by_open_time_then_seq() -> None:
    old, new = (encode_message(make_candle("X1", "1m", T0 + dt, seq=s)) for dt, s in ((0, 9), (60_000, 1)))
    assert newest(old, new) == new and newest(new, old) == new and newest(None, old) == old
    same = encode_message(make_candle("X1", "1m", T0, seq=9))
    assert newest(old, same) is same  # a tie: the second (the live update) wins


def test_unreadable_redis_messages_are_counted_not_raised(hub: Hub) -> None:
    asyncio.run(_dispatch(hub, b"not json"))
    asyncio.run(_dispatch(hub, encode_message(make_candle("BTCUSDT", "1m", T0, seq=1))))  # a bare object is fine
    assert hub.invalid_messages == 1 and hub.messages_in == 2 and "BTCUSDT:1m" in hub.latest


def test_settings_survive_the_trip_through_the_environment(tmp_path: Path) -> None:
    settings = isolated_settings("redis://127.0.0.1:6379/0", tmp_path, api_token="t", ws_slow_timeout_s=2.5,
                                 cors_origins=("http://a", "http://b"), seed=3)  # fmt: skip
    assert Settings.from_env(settings_env(settings)) == settings
    assert msgspec.json.decode(msgspec.json.encode(settings_env(settings)))["CANDLES_WS_SLOW_TIMEOUT_S"] == "2.5"


def test_the_slow_client_threshold_grows_with_its_streams(hub: Hub) -> None:
    """5 streams: 4 updates per stream + 16 spare = 36 may wait; the 37th starts coalescing."""
    streams = [f"S{i}USDT:1m" for i in range(5)]
    client = attach(hub, *streams)

    def message(seq: int) -> None:  # six updates: one per stream, and a second one of the first stream
        candles = [make_candle(s.split(":")[0], "1m", T0, seq=seq) for s in streams]
        dispatch(hub, *candles, make_candle("S0USDT", "1m", T0 + 60_000, seq=seq + 1))

    for seq in range(1, 7):
        message(seq * 2)
    assert client.unsent == 36 and client.latest_only is None and hub.coalesced == 0  # exactly at the threshold
    message(20)
    # the 37th update coalesces the 37 waiting to one per stream (32 dropped); the 5 after it each replace one
    assert client.latest_only is not None and hub.coalesced == 32 + 5 and client.unsent == 5
    lone = attach(hub, "S9USDT:1m")
    for seq in range(1, 21):  # one stream: 4 + 16 = 20 may wait
        dispatch(hub, make_candle("S9USDT", "1m", T0, seq=seq))
    assert lone.unsent == 20 and lone.latest_only is None
    dispatch(hub, make_candle("S9USDT", "1m", T0, seq=21))
    assert lone.latest_only is not None


def scope(path: str = "/api/v1/symbols", *, auth: str | None = None, query: str = "", kind: str = "http",
          method: str = "GET") -> dict[str, Any]:  # fmt: skip
    headers = [(b"authorization", auth.encode("latin-1"))] if auth is not None else []
    return {"type": kind, "path": path, "method": method, "headers": headers, "query_string": query.encode()}


@pytest.mark.parametrize(
    ("request_scope", "allowed"),
    [
        (scope(auth="Bearer s3cret-token"), True),
        (scope(auth="bearer s3cret-token"), True),  # the scheme is case-insensitive
        (scope(auth="Bearer  s3cret-token "), True),
        (scope(auth="Bearer s"), False),  # a prefix
        (scope(auth="Bearer s3cret-toke"), False),
        (scope(auth="Bearer 3cret-token"), False),  # a suffix
        (scope(auth="Bearer s3cret-tokenx"), False),
        (scope(auth="Bearer S3CRET-TOKEN"), False),  # the token is case-sensitive
        (scope(auth="Bearer "), False),
        (scope(auth="Basic s3cret-token"), False),
        (scope(auth="s3cret-token"), False),
        (scope(), False),
        (scope(query="token=s3cret-token"), False),  # a query token only where a header cannot be set
        (scope("/ws", query="token=s3cret-token", kind="websocket"), True),
        (scope("/ws/test", query="token=s3cret-token"), True),
        (scope("/ws", query="token=s3cret-toke", kind="websocket"), False),
        (scope("/ws", query="token=", kind="websocket"), False),
        (scope("/ws", kind="websocket"), False),
        (scope("/health"), True),
        (scope("/health/x"), False),
        (scope(method="OPTIONS"), True),  # a CORS preflight carries no credentials
        (scope("/ws", method="OPTIONS", kind="websocket"), False),
    ],
)
def test_only_the_exact_token_is_accepted(request_scope: dict[str, Any], allowed: bool) -> None:
    from backend.relay.auth import TokenAuth

    assert TokenAuth(_nothing, "s3cret-token").authorized(request_scope) is allowed  # type: ignore[arg-type]


def refused(extensions: dict[str, Any] | None, first: str = "websocket.connect") -> list[dict[str, Any]]:
    """What the relay sends to refuse a WebSocket handshake without a valid token."""
    from backend.relay.auth import deny_websocket

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": first}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    request = scope("/ws", kind="websocket") | ({"extensions": extensions} if extensions is not None else {})
    asyncio.run(deny_websocket(request, receive, send, "rid-1"))  # type: ignore[arg-type]
    return sent


def test_a_refused_websocket_gets_http_401_where_the_server_allows_it_else_close_1008() -> None:
    start, body = refused({"websocket.http.response": {}})
    assert (start["type"], start["status"]) == ("websocket.http.response.start", 401)
    headers = dict(start["headers"])
    assert headers[b"x-request-id"] == b"rid-1" and headers[b"www-authenticate"] == b"Bearer"
    assert body["type"] == "websocket.http.response.body"
    assert msgspec.json.decode(body["body"]) == {
        "error": "unauthorized",
        "message": "a valid API token is required (Authorization: Bearer …)",
        "detail": None,
        "request_id": "rid-1",
    }
    assert refused(None) == [{"type": "websocket.close", "code": 1008, "reason": "unauthorized"}]
    assert refused({}) == [{"type": "websocket.close", "code": 1008, "reason": "unauthorized"}]
    assert refused({"websocket.http.response": {}}, first="websocket.disconnect") == []


def test_the_watchdog_closes_a_client_behind_longer_than_the_timeout_with_4008(tmp_path: Path) -> None:
    """A client that keeps 3 updates waiting past ws_slow_timeout_s is closed ("slow consumer"), and counted."""
    hub = Hub(isolated_settings("redis://127.0.0.1:1/0", tmp_path, ws_slow_timeout_s=0.2))
    closes: list[dict[str, Any]] = []

    async def record(message: dict[str, Any]) -> None:
        closes.append(message)

    async def run() -> None:
        slow = Client(hub, record, "slow")
        keeping_up = Client(hub, _nothing, "fine")
        for client in (slow, keeping_up):
            hub.clients.add(client)
            hub.attach(client, ["BTCUSDT:1m"])
        hub.detach(keeping_up, ["BTCUSDT:1m"])  # nothing waits for this one
        loop = asyncio.get_running_loop()
        for seq in range(1, 4):
            slow.offer(f"S{seq}USDT:1m", encode_message(make_candle(f"S{seq}USDT", "1m", T0, seq=seq)), loop.time())
        watchdog = asyncio.ensure_future(hub.run_watchdog())
        while not closes:  # the watchdog checks every timeout / 4
            await asyncio.sleep(0.01)
        watchdog.cancel()
        assert slow.closed and not keeping_up.closed
        assert hub.clients == {keeping_up}
        hub.drop_slow(slow)  # already closed: not counted twice
        await asyncio.sleep(0)

    asyncio.run(asyncio.wait_for(run(), 10))
    assert closes == [{"type": "websocket.close", "code": 4008, "reason": "slow consumer"}]
    assert (hub.slow_disconnects, hub.dropped) == (1, 3)


class Writes:
    """A server's direct frame write (``candles.write_frame``): records the frames, accepts while ``open``."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.open = True

    def __call__(self, frame: bytes) -> bool:
        if self.open:
            self.frames.append(frame)
        return self.open


def writing_client(hub: Hub, key: str) -> tuple[Client, Writes]:
    writes = Writes()
    client = Client(hub, _nothing, "test", writes)
    hub.clients.add(client)
    hub.attach(client, [key])
    return client, writes


def test_an_idle_client_gets_each_message_written_at_once_as_one_prebuilt_frame(hub: Hub) -> None:
    client, writes = writing_client(hub, "BTCUSDT:1m")
    hub.messages_out, hub.updates_out = 5, 7
    sent = dispatch(hub, make_candle("BTCUSDT", "1m", T0, seq=1), make_candle("BTCUSDT", "1m", T0, seq=2))
    payload = b"[" + b",".join(sent) + b"]"
    assert writes.frames == [bytes((0x81, 126)) + len(payload).to_bytes(2, "big") + payload]  # RFC 6455, unmasked
    assert (hub.messages_out, hub.updates_out) == (6, 9)
    assert client.unsent == 0 and not client.wake.is_set()  # nothing left for the sender task


def test_a_client_with_a_send_or_a_control_message_ahead_leaves_updates_to_its_sender(hub: Hub) -> None:
    """Written at once only when nothing is ahead: a reply being sent, a queued one, or a full write buffer."""
    for ahead in ("sending", "control", "buffer full"):
        client, writes = writing_client(hub, f"S{len(hub.clients)}USDT:1m")
        symbol = next(iter(client.streams)).split(":")[0]
        if ahead == "sending":
            client.send_started = 1.0
        elif ahead == "control":
            client.push_control('{"type":"pong"}')
            client.wake.clear()
        else:
            writes.open = False
        sent = dispatch(hub, make_candle(symbol, "1m", T0, seq=1))
        assert writes.frames == [] and client.wake.is_set(), ahead
        assert client.take() == tuple(sent), ahead
    assert (hub.messages_out, hub.updates_out) == (0, 0)


def test_a_coalescing_client_is_written_by_its_sender_not_by_each_message(hub: Hub) -> None:
    client, writes = writing_client(hub, "BTCUSDT:1m")
    writes.open = False  # the peer stopped reading: its write buffer is full
    hub.coalesced = 100
    for seq in range(1, BUFFER_PER_STREAM + BUFFER_SPARE + 3):
        last = dispatch(hub, make_candle("BTCUSDT", "1m", T0, seq=seq))
    assert client.latest_only is not None and hub.coalesced == 100 + 20 + 1  # 21 waiting became 1, then one replaced
    writes.open = True
    client.wake.clear()
    newest = dispatch(hub, make_candle("BTCUSDT", "1m", T0, seq=99))
    assert writes.frames == [] and not client.wake.is_set()  # its sender, already woken, sends what is newest
    assert client.take() == tuple(newest) and last != newest


def test_lag_is_how_long_an_update_or_a_send_has_waited(hub: Hub) -> None:
    client = attach(hub, "BTCUSDT:1m")
    assert client.lag(50.0) == 0.0
    client.offer("BTCUSDT:1m", b"{}", 10.0)
    assert client.lag(12.5) == 2.5
    client.hold = 1  # behind a snapshot in preparation, not behind the client
    assert client.lag(12.5) == 0.0
    client.send_started = 11.0
    assert client.lag(14.0) == 3.0
    client.hold = 0
    assert client.lag(14.0) == 4.0
    client.take()
    assert client.lag(14.0) == 3.0


def test_taking_a_stream_leaves_the_others_in_order(hub: Hub) -> None:
    client = attach(hub, "AUSDT:1m", "BUSDT:1m", "CUSDT:1m")
    a1, b1, a2, c1 = (
        dispatch(hub, make_candle(s, "1m", T0, seq=q))[0]
        for s, q in (("AUSDT", 1), ("BUSDT", 1), ("AUSDT", 2), ("CUSDT", 1))
    )
    assert client.take_stream("AUSDT:1m") == a2 and a1 != a2
    assert client.take_stream("BUSDT:1m") == b1
    assert client.take_stream("BUSDT:1m") is None
    assert client.take() == (c1,)
    client.latest_only = {"CUSDT:1m": c1}  # coalescing: a stream with nothing unsent is no error either
    assert client.take_stream("AUSDT:1m") is None and client.latest_only == {"CUSDT:1m": c1}


def test_closing_a_client_whose_peer_is_gone_reports_nothing(hub: Hub) -> None:
    async def gone(_message: dict[str, Any]) -> None:
        raise ConnectionResetError("peer gone")

    async def run() -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
        client = Client(hub, gone, "gone")
        hub.clients.add(client)
        client.shut(4008, "slow consumer")
        for _ in range(5):
            await asyncio.sleep(0)
        gc.collect()  # a task that ended with an exception nobody read reports it when collected
        return errors

    assert asyncio.run(run()) == []

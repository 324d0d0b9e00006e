"""The relay's WebSocket fuzzed with generated frames: every bad message is answered, the connection stays up,
no traceback is logged and memory stays bounded."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.protocol import ERROR_CODES
from tests.stack import Server, WsClient, isolated_settings, start_relay

pytestmark = [pytest.mark.integration, pytest.mark.resilience]

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
JSON_VALUES = st.recursive(
    JSON_SCALARS, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
)
OPS = st.sampled_from(["subscribe", "unsubscribe", "ping", "Ping", "", "subscribe "])
CLIENT_OPS = st.fixed_dictionaries(
    {"op": OPS | JSON_VALUES},
    optional={
        "symbols": st.lists(st.text(max_size=25), max_size=8) | JSON_VALUES,
        "intervals": st.lists(st.sampled_from(["1s", "1m", "5m", "7m", "", "1M"]), max_size=4) | JSON_VALUES,
        "id": JSON_VALUES,
        "alerts": JSON_VALUES,
    },
)
HUGE_NUMBERS = st.sampled_from(["1" * 5000, "1e999999", "-1e999999", "0." + "0" * 4000 + "1"]).map(
    lambda n: '{"op": "ping", "id": ' + n + "}"
)
NESTED = st.tuples(st.integers(9, 3000), st.sampled_from(["[", '{"a":'])).map(
    lambda d: '{"op": "ping", "x": ' + d[1] * d[0] + "1" + ("]" if d[1] == "[" else "}") * d[0] + "}"
)
TEXT_FRAMES = (
    CLIENT_OPS.map(json.dumps)
    | JSON_VALUES.map(json.dumps)
    | st.text(max_size=200)
    | HUGE_NUMBERS
    | NESTED
    | st.just("x" * 20_000)
)


@pytest.fixture(scope="module")
def relay(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("fuzz")
    with start_relay(isolated_settings(redis_url, data), log_dir=data) as server:
        yield server


@pytest.fixture(scope="module")
def client(relay: Server) -> Iterator[WsClient]:
    with WsClient(relay.ws_url) as ws:
        yield ws


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _answer(client: WsClient) -> dict[str, object] | None:
    """The control reply to one frame (data frames from a subscription are skipped); None: no reply is due."""
    client.send({"op": "ping", "id": "sync"})
    reply = None
    while True:
        message = client.recv(10)
        if isinstance(message, dict) and message.get("id") == "sync" and message.get("type") == "pong":
            return reply
        if isinstance(message, dict) and message.get("type") in ("error", "pong", "subscribed", "unsubscribed"):
            reply = message


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=TEXT_FRAMES)
def test_generated_text_frames_are_answered_and_the_connection_stays(client: WsClient, frame: str) -> None:
    client.ws.send(frame)
    reply = _answer(client)
    assert reply is not None, frame[:200]
    if reply["type"] == "error":
        assert reply["code"] in ERROR_CODES and reply["message"], reply


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=st.binary(max_size=2000))
def test_generated_binary_frames_are_answered_and_the_connection_stays(client: WsClient, frame: bytes) -> None:
    client.ws.send_binary(frame)
    reply = _answer(client)
    assert reply is not None and reply["type"] in ("error", "pong", "subscribed", "unsubscribed"), reply


def test_a_flood_is_answered_in_order_then_the_log_is_clean_and_memory_bounded(relay: Server) -> None:
    before = rss_kb(relay.process.pid)
    with WsClient(relay.ws_url) as flood:  # 5,000 messages, 100 in flight at a time: all answered, in order
        replies = []
        for start in range(0, 5000, 100):
            for i in range(start, start + 100):
                flood.ws.send(f'{{"op": "ping", "id": {i}}}' if i % 2 else '{"op": "ping", "id": [[[[[[[[[1]]]]]]]]]}')
            replies += [flood.recv(10) for _ in range(100)]
        assert [r["id"] for r in replies if r["type"] == "pong"] == list(range(1, 5000, 2))
        assert sum(r["type"] == "error" and r["code"] == "too_large" for r in replies) == 2500
    with WsClient(relay.ws_url) as big:  # a frame over uvicorn's 1 MiB limit closes that connection alone
        with contextlib.suppress(OSError, websocket.WebSocketException):  # the relay may close mid-send
            big.ws.send("x" * (2 << 20))
        _, code, _ = big.drain(5)
        # 1009 "message too big"; None when the reset of the unread rest of the frame beats the close frame
        assert code in (1009, None)
        with pytest.raises((OSError, websocket.WebSocketException)):
            big.ws.send('{"op": "ping"}')
            big.recv(5)
    with WsClient(relay.ws_url) as after:
        after.send({"op": "ping"})
        assert after.recv(5) == {"type": "pong"}
    log = relay.log_path.read_text()
    assert "Traceback" not in log and "RecursionError" not in log
    assert rss_kb(relay.process.pid) - before < 64 * 1024, "the relay grew by more than 64 MB"

"""Connection limits of the relay's WebSocket, against real relays: per client address and in total."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import websocket

from tests.stack import WsClient, isolated_settings, start_relay

pytestmark = pytest.mark.integration


def _refusal(url: str) -> tuple[int, bytes]:
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        WsClient(url)
    return refused.value.status_code, refused.value.resp_body


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (
            {"ws_max_connections_per_address": 3},
            b"127.0.0.1 holds its limit of 3 connections; close one first",
        ),
        ({"ws_max_connections": 3}, b"the relay holds its limit of 3 connections; try again later"),
    ],
)
def test_connections_over_a_limit_are_refused_until_one_closes(
    redis_url: str, tmp_path: Path, limits: dict[str, int], message: bytes
) -> None:
    settings = isolated_settings(redis_url, tmp_path, **limits)
    with start_relay(settings, log_dir=tmp_path) as relay, contextlib.ExitStack() as held:
        clients = [held.enter_context(WsClient(relay.ws_url)) for _ in range(3)]
        status, body = _refusal(relay.ws_url)
        assert status == 429
        assert b'"error":"too_many_connections"' in body and message in body
        for client in clients:  # the held connections still work
            client.send({"op": "ping"})
            assert client.recv(5) == {"type": "pong"}
        clients[0].close()
        relay.wait_until(lambda: relay.stats()["connections"] == 2, 10, "the closed connection to be released")
        with WsClient(relay.ws_url) as again:
            again.send({"op": "ping"})
            assert again.recv(5) == {"type": "pong"}

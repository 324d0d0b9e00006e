"""The relay with ``CANDLES_API_TOKEN`` set and fast keepalive pings: 401 but on /health, dead peers dropped."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import websocket

from backend.config import Settings
from tests.stack import Server, WsClient, isolated_settings, relay_scope, start_relay

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token"
DASHBOARD = "http://dashboard.example"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
GUARDED = {  # path → its answer with the token (nothing was published on this relay's Redis)
    "/api/v1/symbols": 200,
    "/api/v1/candles/BTCUSDT": 404,
    "/api/v1/candles": 200,
    "/api/v1/history/BTCUSDT": 404,
    "/api/v1/stats": 200,
    "/ws/stats": 200,
    "/metrics": 200,
    "/ws/test": 200,
    "/openapi.json": 200,
    "/docs": 200,
}
NEAR_MISSES = [
    f"Bearer {TOKEN[:1]}",  # a prefix of the token
    f"Bearer {TOKEN[:-1]}",
    f"Bearer {TOKEN}x",  # the token and more
    f"Bearer x{TOKEN}",
    f"Bearer {TOKEN.upper()}",  # case
    f"Bearer {TOKEN[1:]}",  # a suffix
    "Bearer",
    f"Basic {TOKEN}",
    f"{TOKEN}",
]


@pytest.fixture(scope="module")
def relay_settings(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return isolated_settings(
        redis_url,
        tmp_path_factory.mktemp("auth"),
        api_token=TOKEN,
        ws_ping_interval_s=0.5,
        ws_ping_timeout_s=1.0,
        cors_origins=(DASHBOARD,),
    )


@pytest.fixture(scope=relay_scope)
def relay(relay_settings: Settings) -> Iterator[Server]:
    with start_relay(relay_settings, log_dir=relay_settings.data_dir) as server:
        yield server


@pytest.mark.parametrize("path", GUARDED)
def test_every_route_but_health_needs_the_token(relay: Server, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, *({"Authorization": a} for a in NEAR_MISSES)):
        response = relay.get(path, headers=headers)
        assert response.status_code == 401, (path, headers)
        assert response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer" and response.headers["x-request-id"]
    assert relay.get(path, headers=BEARER).status_code == GUARDED[path]
    assert relay.get(path, headers={"Authorization": f"bearer {TOKEN}"}).status_code == GUARDED[path]


def test_health_is_open_and_query_tokens_only_work_where_headers_cannot_be_set(relay: Server) -> None:
    assert relay.get("/health").status_code == 200
    assert relay.get("/api/v1/symbols", params={"token": TOKEN}).status_code == 401
    assert relay.get("/ws/test", params={"token": TOKEN}).status_code == 200  # the page passes it on to /ws


def test_cors_allows_the_configured_origins_only(relay: Server) -> None:
    preflight = {
        "Origin": DASHBOARD,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    allowed = relay.client.options("/api/v1/symbols", headers=preflight)  # no token: preflights carry none
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == DASHBOARD
    got = relay.get("/api/v1/symbols", headers=BEARER | {"Origin": DASHBOARD})
    assert got.headers["access-control-allow-origin"] == DASHBOARD
    assert "X-Request-ID" in got.headers["access-control-expose-headers"]
    other = relay.get("/api/v1/symbols", headers=BEARER | {"Origin": "http://elsewhere.example"})
    assert "access-control-allow-origin" not in other.headers


def test_websocket_needs_the_token(relay: Server) -> None:
    for token in (None, "wrong", TOKEN[:1], TOKEN[:-1], f"{TOKEN}x", TOKEN.upper()):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            WsClient(relay.ws_url, token=token)
        assert refused.value.status_code == 401
    with WsClient(relay.ws_url, token=TOKEN) as client:
        assert client.subscribe(["BTCUSDT"], ["1m"])[0]["streams"] == ["BTCUSDT:1m"]
    with WsClient(relay.ws_url, header=[f"Authorization: Bearer {TOKEN}"]) as client:
        client.send({"op": "ping"})
        assert client.recv(5) == {"type": "pong"}


def test_server_pings_keep_a_reading_client_and_drop_a_dead_one(relay: Server) -> None:
    def connections() -> int:
        return relay.stats(headers=BEARER)["connections"]

    with WsClient(relay.ws_url, token=TOKEN) as live, WsClient(relay.ws_url, token=TOKEN) as dead:
        live.subscribe(["BTCUSDT"], ["1m"])
        dead.subscribe(["BTCUSDT"], ["1m"])
        assert connections() == 2
        # `dead` now reads nothing, so it never answers a ping; `live` answers each one as it reads
        pings = 0
        deadline = time.monotonic() + 20
        while connections() != 1:
            assert time.monotonic() < deadline, "the silent peer was never dropped"
            live.ws.settimeout(0.2)
            try:
                opcode, _ = live.ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                continue
            pings += opcode == websocket.ABNF.OPCODE_PING
        assert pings >= 1
        live.send({"op": "ping"})
        assert live.recv(5) == {"type": "pong"}
        _, code, reason = dead.drain(5)
        # the relay queues a 1011 close frame, then aborts the connection (the peer never answers the close):
        # the reset may discard the frame in the peer's unread buffer, so either ending is the relay's doing
        assert (code, reason) in ((1011, "keepalive ping timeout"), (None, ""))

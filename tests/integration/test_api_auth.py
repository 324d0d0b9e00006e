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
    assert relay.get("/docs/swagger-ui.css").status_code == 200  # static files of the docs page: public
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


def test_websocket_origin_must_be_the_relays_own_or_configured(relay: Server) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        WsClient(relay.ws_url, token=TOKEN, origin="http://evil.example")
    assert refused.value.status_code == 403
    assert b'"error":"forbidden_origin"' in refused.value.resp_body
    own = relay.url  # /ws/test's page: same scheme, host and port as the relay
    for origin in (own, DASHBOARD, DASHBOARD + "/"):
        with WsClient(relay.ws_url, token=TOKEN, origin=origin) as client:
            client.send({"op": "ping"})
            assert client.recv(5) == {"type": "pong"}, origin
    with WsClient(relay.ws_url, token=TOKEN, suppress_origin=True) as client:  # not a browser: no Origin
        client.send({"op": "ping"})
        assert client.recv(5) == {"type": "pong"}


def test_the_token_never_reaches_the_log(relay: Server) -> None:
    """The query-string token a browser must use (``/ws?token=``) and the header the listener uses: both redacted."""
    with WsClient(relay.ws_url, token=TOKEN) as client:
        client.send({"op": "ping", "id": "logged"})
        assert client.recv(5) == {"type": "pong", "id": "logged"}
    with WsClient(relay.ws_url, header=[f"Authorization: Bearer {TOKEN}"]):
        pass
    assert relay.get("/ws/test", params={"token": TOKEN}).status_code == 200
    relay.wait_until(lambda: relay.log_path.read_text().count("WebSocket") >= 4, 5, "the handshakes in the log")
    text = relay.log_path.read_text()
    assert "token=***" in text  # uvicorn's handshake line, redacted
    assert TOKEN not in text


def test_the_dashboards_listener_sends_the_token_in_a_header(relay: Server, relay_settings: Settings) -> None:
    from services.feed.feed import Feed
    from tests.stack import Publisher, make_candle

    publisher = Publisher(relay_settings)
    log_before = len(relay.log_path.read_text())
    feed = Feed(relay.url, TOKEN, backoff_initial=0.1, backoff_max=0.5).start()
    try:
        publisher.publish(make_candle("TOKUSDT", "1m", 1_732_665_600_000, seq=1))
        queue = feed.register("s")
        feed.want(queue, {("TOKUSDT", "1m")})
        assert feed.wait_loaded([("TOKUSDT", "1m")], timeout=10)
        assert feed.book(("TOKUSDT", "1m")).last.seq == 1
    finally:
        feed.stop(timeout=3)
        publisher.close()
    relay.wait_until(lambda: "[accepted]" in relay.log_path.read_text()[log_before:], 5, "the handshake line")
    handshakes = [line for line in relay.log_path.read_text()[log_before:].splitlines() if "[accepted]" in line]
    assert handshakes and all('"WebSocket /ws" [accepted]' in line for line in handshakes), handshakes  # no query
    assert TOKEN not in relay.log_path.read_text()


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

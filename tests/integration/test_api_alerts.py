"""The relay's alert routes against a real relay, Redis and SQLite: rules, validation, events, preview, notices."""
# ruff: noqa: E501  (the expected messages are pinned whole)

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from backend.alerts import store
from backend.config import Settings
from backend.models import (
    AlertEvent,
    AlertRule,
)
from backend.store import make_engine
from tests.stack import Publisher, Server, isolated_settings, make_candle, relay_scope, start_relay

pytestmark = pytest.mark.integration

T0 = 1_732_665_600_000
MINUTE = 60_000
HOOK = "https://hooks.example.com/services/T000/B000/XXXXXXXXXXXXXXXX"
HOOK_SHOWN = "https://hooks.example.com/services/T000/B000/XXXX…"
CLOSES = [100.0, 99.0, 101.0, 102.0, 98.0, 103.0]  # of PRVWUSDT 1m, cached: crosses 100 up at 2 and 5


@pytest.fixture(scope="module")
def relay_settings(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return isolated_settings(redis_url, tmp_path_factory.mktemp("alerts"))


@pytest.fixture(scope=relay_scope)
def relay(relay_settings: Settings) -> Iterator[Server]:
    with start_relay(relay_settings, log_dir=relay_settings.data_dir) as server:
        publisher = Publisher(relay_settings)
        candles = [
            make_candle("PRVWUSDT", "1m", T0 + i * MINUTE, seq=i + 1, close=c, closed=True)
            for i, c in enumerate(CLOSES)
        ]
        publisher.publish(*candles)
        publisher.close()
        yield server


def post(relay: Server, path: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    response = relay.client.post(path, json=body)
    return response.status_code, response.json()


def test_create_answers_201_with_the_rule_armed_and_its_targets_masked(relay: Server) -> None:
    status, rule = post(
        relay,
        "/api/v1/alerts/rules",
        {"symbol": "btc/usdt", "kind": "price_above", "threshold": 97000, "targets": [HOOK], "note": "n"},
    )
    assert status == 201
    created_at = rule.pop("created_at")
    rule_id = rule.pop("id")
    assert isinstance(created_at, int) and isinstance(rule_id, int)
    assert rule == {
        "symbol": "BTCUSDT",
        "interval": "1m",
        "kind": "price_above",
        "threshold": 97000.0,
        "watch": "close",
        "frequency": "once",
        "cooldown_s": 0,
        "lookback": None,
        "factor": None,
        "expires_at": None,
        "targets": [HOOK_SHOWN],
        "enabled": True,
        "note": "n",
        "state": "armed",
        "last_fired_at": None,
        "fire_count": 0,
    }
    assert relay.get(f"/api/v1/alerts/rules/{rule_id}").json()["targets"] == [HOOK_SHOWN]
    assert rule_id in [r["id"] for r in relay.get("/api/v1/alerts/rules").json()["items"]]
    assert HOOK not in relay.get("/api/v1/alerts/rules").text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"symbol": "BTC USDT!"}, "symbol: 'BTC USDT!' is not a symbol: use 2 to 20 letters or digits, like BTCUSDT"),
        ({"symbol": "BTCUSDT", "interval": "9m", "threshold": 1}, "interval: unknown interval '9m'; choose from 1s, 1m, 5m, 15m, 1h, 4h, 1d"),
        ({"symbol": "BTCUSDT", "interval": "4h", "threshold": 1}, "interval: this relay builds 1s, 1m, 5m, 15m, 1h, not 4h"),
        ({"symbol": "BTCUSDT", "kind": "price_above"}, "threshold: price_above needs a number (or an indicator such as ema50)"),
        ({"symbol": "BTCUSDT", "kind": "cross", "threshold": "ema7"}, "threshold: cross compares against a number or one of sma20, sma50, ema20, ema50, vwap, bb20_upper, bb20_mid, bb20_lower, rsi14"),
        ({"symbol": "BTCUSDT", "kind": "channel_exit", "threshold": [1]}, "threshold: channel_exit needs [low, high], two different numbers"),
        ({"symbol": "BTCUSDT", "kind": "pct_move", "threshold": 2}, "lookback: pct_move needs the number of candles to measure the move over"),
        ({"symbol": "BTCUSDT", "kind": "pct_move", "threshold": -1, "lookback": 3}, "threshold: pct_move needs a percentage above 0, like 2.5"),
        ({"symbol": "BTCUSDT", "kind": "pct_move", "threshold": 2, "lookback": 301}, "lookback: Input should be less than or equal to 300"),
        ({"symbol": "BTCUSDT", "kind": "volume_spike", "lookback": 20}, "factor: volume_spike needs factor (like 3) and lookback (like 20)"),
        ({"symbol": "BTCUSDT", "kind": "feed_silent", "threshold": 0}, "threshold: feed_silent needs seconds from 1 to 86400"),
        ({"symbol": "BTCUSDT", "kind": "nope", "threshold": 1}, "kind: Input should be 'price_above', 'price_below', 'cross', 'cross_up', 'cross_down', 'pct_move', 'volume_spike', 'channel_enter', 'channel_exit' or 'feed_silent'"),
        ({"symbol": "BTCUSDT", "threshold": 1, "watch": "macd"}, "watch: cannot watch 'macd'; choose from close, sma20, sma50, ema20, ema50, vwap, bb20_upper, bb20_mid, bb20_lower, rsi14"),
        ({"symbol": "BTCUSDT", "threshold": 1, "targets": ["hello"]}, "targets: 'hello' is not a URL: use https://… for a webhook or an Apprise URL such as tgram://…"),
        ({"symbol": "BTCUSDT", "threshold": 1, "expires_at": 1000}, "expires_at: the time is already past"),
        ({"symbol": "BTCUSDT", "threshold": 1, "frequency": "every"}, "cooldown_s: a level rule firing every update needs a cooldown (or use per_candle)"),
        ({"symbol": "BTCUSDT", "threshold": 1, "colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_invalid_rules_are_422_naming_the_field_and_the_reason(relay: Server, body: dict, message: str) -> None:
    status, answer = post(relay, "/api/v1/alerts/rules", body)
    assert (status, answer["error"], answer["message"]) == (422, "invalid_request", message)


def test_disable_enable_update_and_delete(relay: Server) -> None:
    _, rule = post(relay, "/api/v1/alerts/rules", {"symbol": "ETHUSDT", "threshold": 3600})
    path = f"/api/v1/alerts/rules/{rule['id']}"
    assert relay.client.patch(path, json={"enabled": False}).json()["state"] == "disabled"
    assert relay.client.patch(path, json={"enabled": True}).json()["state"] == "armed"
    changed = relay.client.patch(path, json={"kind": "price_below", "threshold": 3500, "note": "dip"}).json()
    assert (changed["kind"], changed["threshold"], changed["note"], changed["state"]) == (
        "price_below",
        3500.0,
        "dip",
        "armed",
    )
    bad = relay.client.patch(path, json={"kind": "channel_enter"})
    assert (bad.status_code, bad.json()["message"]) == (
        422,
        "threshold: channel_enter needs [low, high], two different numbers",
    )
    assert relay.client.delete(path).status_code == 204
    assert relay.client.delete(path).json()["error"] == "unknown_rule"
    assert relay.get(path).status_code == 404
    assert relay.client.patch(path, json={"note": "x"}).status_code == 404


def test_a_note_change_keeps_a_fired_rule_fired_and_enabling_rearms_it(relay: Server, relay_settings: Settings) -> None:
    _, rule = post(relay, "/api/v1/alerts/rules", {"symbol": "SOLUSDT", "threshold": 240})
    engine = make_engine(relay_settings.database_url or "")
    store.set_rule_states(engine, {rule["id"]: "fired"})  # type: ignore[dict-item]
    engine.dispose()
    path = f"/api/v1/alerts/rules/{rule['id']}"
    assert relay.client.patch(path, json={"note": "seen"}).json()["state"] == "fired"
    assert relay.client.patch(path, json={"enabled": True}).json()["state"] == "armed"


def test_every_change_is_announced_on_the_rules_channel(relay: Server, relay_settings: Settings) -> None:
    client = redis.Redis.from_url(relay_settings.redis_url or "")
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(relay_settings.alert_rules_channel)
    pubsub.get_message(timeout=1)
    _, rule = post(relay, "/api/v1/alerts/rules", {"symbol": "BNBUSDT", "threshold": 650})
    relay.client.patch(f"/api/v1/alerts/rules/{rule['id']}", json={"enabled": False})
    relay.client.delete(f"/api/v1/alerts/rules/{rule['id']}")
    notices = [pubsub.get_message(timeout=5) for _ in range(3)]
    assert [n["data"] for n in notices if n] == [b"changed"] * 3
    pubsub.close()
    client.close()


def test_events_are_paged_newest_first_and_filtered(relay: Server, relay_settings: Settings) -> None:
    engine = make_engine(relay_settings.database_url or "")
    rule = store.create_rule(engine, AlertRule(symbol="XRPUSDT", threshold=1.0), T0)
    events = [
        AlertEvent(rule_id=rule.id or 0, symbol="XRPUSDT", interval="1m", kind="price_above", threshold=1.0,
                   value=1.0 + i, message=f"#{i}", fired_at=T0 + i, open_time=T0)
        for i in range(5)
    ]  # fmt: skip
    store.record_fires(engine, events, {rule.id or 0: [HOOK]})
    engine.dispose()
    first = relay.get("/api/v1/alerts/events", params={"rule_id": rule.id, "limit": 3}).json()
    assert [e["message"] for e in first["items"]] == ["#4", "#3", "#2"]
    assert (first["has_more"], first["count"]) == (True, 3)
    assert first["items"][0]["deliveries"] == [
        {"target": HOOK_SHOWN, "status": "pending", "attempts": 0, "last_error": None, "delivered_at": None}
    ]
    rest = relay.get("/api/v1/alerts/events", params={"rule_id": rule.id, "cursor": first["next_cursor"]}).json()
    assert ([e["message"] for e in rest["items"]], rest["has_more"], rest["next_cursor"]) == (["#1", "#0"], False, None)
    assert {e["symbol"] for e in relay.get("/api/v1/alerts/events", params={"symbol": "xrp-usdt"}).json()["items"]} == {
        "XRPUSDT"
    }
    assert relay.get("/api/v1/alerts/events", params={"limit": 0}).status_code == 422


def test_preview_marks_where_the_rule_would_have_fired_over_the_cached_candles(relay: Server) -> None:
    status, answer = post(relay, "/api/v1/alerts/preview", {"symbol": "PRVWUSDT", "kind": "cross_up", "threshold": 100})
    assert status == 200
    assert (answer["candles"], answer["first"], answer["last"], answer["count"]) == (6, T0, T0 + 5 * MINUTE, 2)
    assert [f["open_time"] for f in answer["fires"]] == [T0 + 2 * MINUTE, T0 + 5 * MINUTE]
    assert [f["message"] for f in answer["fires"]] == ["PRVWUSDT crossed above 100"] * 2
    assert relay.get("/api/v1/alerts/rules").status_code == 200
    assert "PRVWUSDT" not in relay.get("/api/v1/alerts/rules").text  # a preview saves nothing

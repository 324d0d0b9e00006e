"""Alert rules and events in SQL (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from backend.alerts import store
from backend.models import AlertEvent, AlertRule, Delivery

pytestmark = pytest.mark.integration
NOW = 1_732_665_600_000


def event(rule_id: int, i: int, symbol: str = "BTCUSDT") -> AlertEvent:
    return AlertEvent(
        rule_id=rule_id,
        symbol=symbol,
        interval="1m",
        kind="price_above",
        threshold=100.0,
        value=100.0 + i,
        message=f"m{i}",
        fired_at=NOW + i,
        open_time=NOW,
    )


def test_rules_round_trip_with_every_field(db_engine: Engine) -> None:
    body = AlertRule(
        symbol="ETHUSDT",
        interval="5m",
        kind="channel_exit",
        threshold=[3500.0, 3700.0],
        watch="ema20",
        frequency="every",
        cooldown_s=60,
        lookback=3,
        factor=2.5,
        expires_at=NOW + 10,
        targets=["https://example.com/h"],
        note="n",
    )
    created = store.create_rule(db_engine, body, NOW)
    assert created.id is not None and (created.state, created.created_at, created.fire_count) == ("armed", NOW, 0)
    assert store.get_rule(db_engine, created.id) == created
    threshold_rule = store.create_rule(db_engine, AlertRule(symbol="BTCUSDT", threshold="ema50", kind="cross"), NOW)
    assert store.get_rule(db_engine, threshold_rule.id).threshold == "ema50"  # type: ignore[arg-type, union-attr]
    assert [r.id for r in store.list_rules(db_engine)] == [created.id, threshold_rule.id]
    assert [r.id for r in store.list_rules(db_engine, symbol="BTCUSDT")] == [threshold_rule.id]


def test_disabling_disarms_enabling_rearms_and_delete_removes(db_engine: Engine) -> None:
    rule = store.create_rule(db_engine, AlertRule(symbol="BTCUSDT", threshold=1.0), NOW)
    assert store.update_rule(db_engine, rule.id, {"enabled": False}).state == "disabled"  # type: ignore[arg-type, union-attr]
    store.set_rule_states(db_engine, {rule.id: "fired"})  # type: ignore[dict-item]
    assert store.get_rule(db_engine, rule.id).state == "disabled"  # type: ignore[arg-type, union-attr]
    assert store.update_rule(db_engine, rule.id, {"enabled": True, "threshold": 2.0}).state == "armed"  # type: ignore[arg-type, union-attr]
    store.set_rule_states(db_engine, {rule.id: "fired"})  # type: ignore[dict-item]
    assert store.get_rule(db_engine, rule.id).state == "fired"  # type: ignore[arg-type, union-attr]
    assert store.delete_rule(db_engine, rule.id) is True  # type: ignore[arg-type]
    assert store.delete_rule(db_engine, rule.id) is False  # type: ignore[arg-type]
    assert store.update_rule(db_engine, 999, {"note": "x"}) is None


def test_fires_are_stored_counted_and_paged_newest_first(db_engine: Engine) -> None:
    a = store.create_rule(db_engine, AlertRule(symbol="BTCUSDT", threshold=1.0, targets=["https://e.com/x"]), NOW)
    b = store.create_rule(db_engine, AlertRule(symbol="ETHUSDT", threshold=1.0), NOW)
    events = [event(a.id, i) for i in range(5)] + [event(b.id, 9, "ETHUSDT")]  # type: ignore[arg-type]
    ids = store.record_fires(db_engine, events, {a.id: ["https://e.com/x"]})  # type: ignore[dict-item]
    assert len(ids) == 6 and ids == sorted(ids)
    rule_a = store.get_rule(db_engine, a.id)  # type: ignore[arg-type]
    assert (rule_a.fire_count, rule_a.last_fired_at) == (5, NOW + 4)  # type: ignore[union-attr]
    page, cursor = store.list_events(db_engine, rule_id=a.id, limit=2)
    assert [e.value for e in page] == [104.0, 103.0] and cursor == ids[3]
    page, cursor = store.list_events(db_engine, rule_id=a.id, limit=2, cursor=cursor)
    assert [e.value for e in page] == [102.0, 101.0]
    page, cursor = store.list_events(db_engine, rule_id=a.id, limit=2, cursor=cursor)
    assert ([e.value for e in page], cursor) == ([100.0], None)
    assert [e.symbol for e in store.list_events(db_engine, symbol="ETHUSDT")[0]] == ["ETHUSDT"]
    assert page[0].deliveries == [Delivery(target="https://e.com/x", status="pending", attempts=0)]
    store.set_deliveries(
        db_engine, ids[0], [Delivery(target="https://e.com/x", status="failed", attempts=4, last_error="HTTP 500")]
    )
    (first,) = store.list_events(db_engine, rule_id=a.id, limit=1, cursor=ids[1])[0]
    assert (first.deliveries[0].status, first.deliveries[0].attempts, first.open_time) == ("failed", 4, NOW)

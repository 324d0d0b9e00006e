"""Alert rules and events in SQL: every query of the ``alert_rules`` and ``alert_events`` tables.

The tables themselves are declared with the others in :mod:`backend.store` (one metadata, one set of
migrations). Events are listed newest first with keyset pagination on ``id``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from sqlalchemy import Engine, case, delete, insert, select, update

from backend.alerts.targets import mask
from backend.models import AlertEvent, AlertRecord, AlertRule, Delivery
from backend.store import alert_events, alert_rules

RULE_FIELDS = tuple(AlertRule.__struct_fields__)
EVENT_FIELDS = tuple(AlertRecord.__struct_fields__)


def rule_from_row(row: Mapping[str, Any]) -> AlertRule:
    return AlertRule(**{name: row[name] for name in RULE_FIELDS})


def record_from_row(row: Mapping[str, Any]) -> AlertRecord:
    values = {name: row[name] for name in EVENT_FIELDS if name != "deliveries"}
    deliveries = [msgspec.convert(d, Delivery) for d in row["deliveries"] or []]
    return AlertRecord(**values, deliveries=deliveries)


def create_rule(engine: Engine, rule: AlertRule, now: int) -> AlertRule:
    values = {name: getattr(rule, name) for name in RULE_FIELDS if name != "id"}
    values.update(created_at=now, state="armed" if rule.enabled else "disabled", fire_count=0, last_fired_at=None)
    with engine.begin() as conn:
        rule_id = conn.execute(insert(alert_rules).values(**values).returning(alert_rules.c.id)).scalar_one()
    return AlertRule(**{**values, "id": rule_id})


def get_rule(engine: Engine, rule_id: int) -> AlertRule | None:
    with engine.connect() as conn:
        row = conn.execute(select(alert_rules).where(alert_rules.c.id == rule_id)).mappings().first()
    return rule_from_row(row) if row else None


def list_rules(engine: Engine, *, symbol: str | None = None) -> list[AlertRule]:
    query = select(alert_rules).order_by(alert_rules.c.id)
    if symbol:
        query = query.where(alert_rules.c.symbol == symbol)
    with engine.connect() as conn:
        return [rule_from_row(r) for r in conn.execute(query).mappings()]


def update_rule(engine: Engine, rule_id: int, changes: Mapping[str, Any]) -> AlertRule | None:
    """Apply ``changes``; enabling a rule re-arms it, disabling disarms it."""
    values = dict(changes)
    if "enabled" in values:
        values["state"] = "armed" if values["enabled"] else "disabled"
    with engine.begin() as conn:
        if values:
            conn.execute(update(alert_rules).where(alert_rules.c.id == rule_id).values(**values))
        row = conn.execute(select(alert_rules).where(alert_rules.c.id == rule_id)).mappings().first()
    return rule_from_row(row) if row else None


def delete_rule(engine: Engine, rule_id: int) -> bool:
    with engine.begin() as conn:
        return conn.execute(delete(alert_rules).where(alert_rules.c.id == rule_id)).rowcount > 0


def record_fires(engine: Engine, events: Sequence[AlertEvent], targets: Mapping[int, list[str]]) -> list[int]:
    """Store fired alerts (deliveries pending, one per target, masked) and count them on their rules.

    One transaction: the events, each rule's ``fire_count`` and ``last_fired_at``. Returns the event ids.
    """
    if not events:
        return []
    rows = [
        {
            **{name: getattr(e, name) for name in EVENT_FIELDS if name not in {"id", "deliveries"}},
            "deliveries": [msgspec.to_builtins(Delivery(target=mask(t))) for t in targets.get(e.rule_id, [])],
        }
        for e in events
    ]
    fires: dict[int, tuple[int, int]] = {}
    for e in events:
        count, _ = fires.get(e.rule_id, (0, 0))
        fires[e.rule_id] = (count + 1, e.fired_at)
    with engine.begin() as conn:
        returning = insert(alert_events).returning(alert_events.c.id)
        ids = [conn.execute(returning.values(**row)).scalar_one() for row in rows]
        for rule_id, (count, last) in fires.items():
            conn.execute(
                update(alert_rules)
                .where(alert_rules.c.id == rule_id)
                .values(fire_count=alert_rules.c.fire_count + count, last_fired_at=last)
            )
    return ids


def set_rule_states(engine: Engine, states: Mapping[int, str]) -> None:
    """The engine's verdicts (``fired`` after a ``once`` rule fired, ``expired``); a disabled rule stays so."""
    if not states:
        return
    with engine.begin() as conn:
        for rule_id, state in states.items():
            conn.execute(
                update(alert_rules)
                .where(alert_rules.c.id == rule_id, alert_rules.c.enabled)
                .values(state=case((alert_rules.c.state == "armed", state), else_=alert_rules.c.state))
            )


def set_deliveries(engine: Engine, event_id: int, deliveries: Sequence[Delivery]) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(alert_events)
            .where(alert_events.c.id == event_id)
            .values(deliveries=[msgspec.to_builtins(d) for d in deliveries])
        )


def list_events(
    engine: Engine,
    *,
    rule_id: int | None = None,
    symbol: str | None = None,
    interval: str | None = None,
    limit: int = 100,
    cursor: int | None = None,
) -> tuple[list[AlertRecord], int | None]:
    """Newest first; ``cursor`` is the id to continue below. Returns the page and the next cursor."""
    query = select(alert_events).order_by(alert_events.c.id.desc()).limit(limit + 1)
    if rule_id is not None:
        query = query.where(alert_events.c.rule_id == rule_id)
    if symbol:
        query = query.where(alert_events.c.symbol == symbol)
    if interval:
        query = query.where(alert_events.c.interval == interval)
    if cursor is not None:
        query = query.where(alert_events.c.id < cursor)
    with engine.connect() as conn:
        rows = list(conn.execute(query).mappings())
    items = [record_from_row(r) for r in rows[:limit]]
    return items, (items[-1].id if len(rows) > limit else None)

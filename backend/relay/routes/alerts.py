"""``/api/v1/alerts/…``: alert rules (list, create, read, update, enable/disable, delete), events and preview.

Rules live in SQL; every change is announced on the rules channel so the ingest's alert engine reloads
them at once. Targets are answered masked; a validation error is a 422 naming the field and the reason.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route signatures.

import contextlib
from typing import Annotated

import msgspec
from fastapi import APIRouter, Body, Path, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from redis.exceptions import RedisError

from backend import cache
from backend.alerts import store
from backend.alerts.rules import preview
from backend.alerts.targets import mask
from backend.models import AlertRule, Candle, decode_message, now_ms
from backend.relay.alert_bodies import (
    EventsBody,
    PreviewBody,
    PreviewFire,
    RuleIn,
    RulePatch,
    RulesBody,
    rule_from_input,
)
from backend.relay.bodies import encoded_response
from backend.relay.errors import ApiError
from backend.relay.openapi import responses
from backend.relay.state import Relay

MAX_EVENTS = 500
SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9/_-]{0,18}[A-Za-z0-9]$"  # BTCUSDT, BTC/USDT, btc-usdt: all admitted normalise
PREVIEW_CANDLES = 1000


def shown(rule: AlertRule) -> AlertRule:
    """The rule as answered: targets masked."""
    return msgspec.structs.replace(rule, targets=[mask(t) for t in rule.targets])


def router(relay: Relay) -> APIRouter:
    settings, db = relay.settings, relay.db
    api = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])
    RuleId = Annotated[int, Path(ge=1, le=2**31 - 1, description="rule id")]

    async def announce() -> None:
        """Tell the ingest's alert engine to reload (it also reloads after any reconnect)."""
        with contextlib.suppress(RedisError):
            await relay.redis.publish(settings.alert_rules_channel, b"changed")

    async def rule_or_404(rule_id: int) -> AlertRule:
        rule = await db.run(store.get_rule, rule_id)
        if rule is None:
            raise ApiError(404, "unknown_rule", f"no alert rule {rule_id}")
        return rule

    @api.get("/rules", responses=responses(RulesBody, 422, 503))
    async def list_rules(symbol: Annotated[str | None, Query(pattern=SYMBOL_PATTERN)] = None) -> Response:
        """Every rule (newest last), or those of one symbol."""
        rules = await db.run(store.list_rules, symbol=_symbol(symbol) if symbol else None)
        return encoded_response(RulesBody([shown(r) for r in rules], len(rules)))

    @api.post("/rules", status_code=201, responses=responses(AlertRule, 400, 422, 503, status=201))
    async def create_rule(body: Annotated[RuleIn, Body()]) -> Response:
        """Create a rule; it is armed at once (unless ``enabled`` is false)."""
        rule = rule_from_input(body, settings.intervals, now_ms())
        created = await db.run(store.create_rule, rule, now_ms())
        await announce()
        return encoded_response(shown(created), 201)

    @api.get("/rules/{rule_id}", responses=responses(AlertRule, 404, 422, 503))
    async def get_rule(rule_id: RuleId) -> Response:
        return encoded_response(shown(await rule_or_404(rule_id)))

    @api.patch("/rules/{rule_id}", responses=responses(AlertRule, 400, 404, 422, 503))
    async def update_rule(rule_id: RuleId, body: Annotated[RulePatch, Body()]) -> Response:
        """Change some fields (the whole rule is validated again); ``enabled`` re-arms or disarms it."""
        current = await rule_or_404(rule_id)
        changes = body.model_dump(exclude_unset=True)
        merged = {**{name: getattr(current, name) for name in RuleIn.model_fields}, **changes}
        try:
            checked = RuleIn.model_validate(merged)
        except ValidationError as exc:  # the merged rule is checked like a new one: 422 the same way
            raise RequestValidationError(exc.errors(include_url=False)) from None
        rule = rule_from_input(checked, settings.intervals, now_ms())
        values = {name: getattr(rule, name) for name in RuleIn.model_fields}
        if set(changes) <= {"note"}:
            del values["enabled"]  # a new note keeps the rule's state; any other change re-arms (or disarms) it
        updated = await db.run(store.update_rule, rule_id, values)
        if updated is None:
            raise ApiError(404, "unknown_rule", f"no alert rule {rule_id}")
        await announce()
        return encoded_response(shown(updated))

    @api.delete("/rules/{rule_id}", status_code=204, responses=responses(None, 404, 422, 503, status=204))
    async def delete_rule(rule_id: RuleId) -> Response:
        if not await db.run(store.delete_rule, rule_id):
            raise ApiError(404, "unknown_rule", f"no alert rule {rule_id}")
        await announce()
        return Response(status_code=204)

    @api.get("/events", responses=responses(EventsBody, 422, 503))
    async def events(
        rule_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
        symbol: Annotated[str | None, Query(pattern=SYMBOL_PATTERN)] = None,
        interval: Annotated[str | None, Query(max_length=4)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 100,
        cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,10}$")] = None,
    ) -> Response:
        """Fired alerts, newest first, with their deliveries; pass ``next_cursor`` back for older ones."""
        items, next_cursor = await db.run(
            store.list_events,
            rule_id=rule_id,
            symbol=_symbol(symbol) if symbol else None,
            interval=interval,
            limit=limit,
            cursor=int(cursor) if cursor else None,
        )
        cursor_out = str(next_cursor) if next_cursor is not None else None
        return encoded_response(EventsBody(items, cursor_out, next_cursor is not None, len(items)))

    @api.post("/preview", responses=responses(PreviewBody, 400, 422, 503))
    async def preview_rule(body: Annotated[RuleIn, Body()]) -> Response:
        """Where the rule would have fired over the symbol's cached candles (nothing is saved)."""
        rule = rule_from_input(body, settings.intervals, now_ms(), check_targets=False)
        _known, closed, _latest = await cache.read_stream(
            relay.redis, relay.keys, rule.symbol, rule.interval, PREVIEW_CANDLES
        )
        candles = [c for c in map(decode_message, closed) if isinstance(c, Candle)]
        fires = [PreviewFire(e.open_time or 0, e.value, e.message) for e in preview(rule, candles)]
        first, last = (candles[0].open_time, candles[-1].open_time) if candles else (None, None)
        return encoded_response(PreviewBody(len(candles), first, last, fires, len(fires)))

    return api


def _symbol(raw: str) -> str:
    from backend.models import normalize_symbol

    sym = normalize_symbol(raw)
    if sym is None:
        raise ApiError(422, "invalid_request", f"symbol: {raw[:40]!r} is not a symbol like BTCUSDT")
    return sym

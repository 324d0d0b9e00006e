"""The alert routes' bodies: the rule as a client sends it (validated per kind) and the answers.

A rule body is validated field by field and then as a whole (which fields a kind needs), so a 422
names the field and the reason: ``threshold: channel_exit needs [low, high]``.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from backend.alerts.series import INDICATOR_WATCHES, MAX_LOOKBACK, WATCHES
from backend.alerts.targets import validate_targets
from backend.config import INTERVALS_MS
from backend.models import AlertFrequency, AlertKind, AlertRecord, AlertRule, normalize_symbol
from backend.relay.errors import ApiError

MAX_COOLDOWN_S = 7 * 86_400
MAX_SILENCE_S = 86_400
THRESHOLD_KINDS = ("price_above", "price_below", "cross", "cross_up", "cross_down")


class RuleIn(BaseModel):
    """An alert rule as created (``POST``) or previewed; the server adds id, state and created_at."""

    model_config = ConfigDict(extra="forbid")

    symbol: str = Field(max_length=40, description="BTCUSDT, BTC/USDT or btc-usdt")
    interval: str = Field("1m", description="candle interval the rule watches")
    kind: AlertKind = "price_above"
    threshold: float | list[float] | str | None = Field(
        None, description="a level, an indicator to cross (ema50), [low, high] for channels, % or seconds"
    )
    watch: str = Field("close", description="the close, or an indicator: " + ", ".join(INDICATOR_WATCHES))
    frequency: AlertFrequency = "once"
    cooldown_s: int = Field(0, ge=0, le=MAX_COOLDOWN_S)
    lookback: int | None = Field(None, ge=1, le=MAX_LOOKBACK)
    factor: float | None = Field(None, gt=0, le=1_000_000)
    expires_at: int | None = Field(None, ge=0, le=9_999_999_999_999, description="ms since the epoch")
    targets: list[str] = Field(default_factory=list, max_length=10)
    enabled: bool = True
    note: str = Field("", max_length=500)

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, raw: str) -> str:
        sym = normalize_symbol(raw)
        if sym is None:
            raise ValueError(f"{raw[:40]!r} is not a symbol: use 2 to 20 letters or digits, like BTCUSDT")
        return sym

    @field_validator("interval")
    @classmethod
    def _interval(cls, raw: str) -> str:
        if raw not in INTERVALS_MS:
            raise ValueError(f"unknown interval {raw[:8]!r}; choose from {', '.join(INTERVALS_MS)}")
        return raw

    @field_validator("watch")
    @classmethod
    def _watch(cls, raw: str) -> str:
        if raw not in WATCHES:
            raise ValueError(f"cannot watch {raw[:20]!r}; choose from {', '.join(WATCHES)}")
        return raw

    @field_validator("targets")
    @classmethod
    def _targets(cls, urls: list[str]) -> list[str]:
        return validate_targets(urls)

    @model_validator(mode="after")
    def _fits_kind(self) -> RuleIn:
        problem = kind_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self


# Any subset of a rule's fields (``PATCH``); the merged rule is validated as a whole, as a new one would be.
RulePatch = create_model(
    "RulePatch",
    __config__=ConfigDict(extra="forbid"),
    **{name: (field.annotation | None, None) for name, field in RuleIn.model_fields.items()},  # type: ignore[call-overload]
)


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def kind_problem(rule: RuleIn) -> str | None:
    """Why the fields do not fit the rule's kind, or None. Each message starts with the field."""
    kind, t = rule.kind, rule.threshold
    if kind in THRESHOLD_KINDS:
        if isinstance(t, str):
            if t not in WATCHES or t == rule.watch:
                others = ", ".join(w for w in WATCHES if w != rule.watch)
                return f"threshold: {kind} compares against a number or one of {others}"
        elif not _finite(t):
            return f"threshold: {kind} needs a number (or an indicator such as ema50)"
    elif kind in {"channel_enter", "channel_exit"}:
        if not (isinstance(t, list) and len(t) == 2 and all(_finite(x) for x in t)) or t[0] == t[1]:
            return f"threshold: {kind} needs [low, high], two different numbers"
    elif kind == "pct_move":
        if not _finite(t) or t <= 0:  # type: ignore[operator]
            return "threshold: pct_move needs a percentage above 0, like 2.5"
        if rule.lookback is None:
            return "lookback: pct_move needs the number of candles to measure the move over"
    elif kind == "volume_spike":
        if rule.factor is None or rule.lookback is None:
            return "factor: volume_spike needs factor (like 3) and lookback (like 20)"
    elif kind == "feed_silent" and (not _finite(t) or not 1 <= t <= MAX_SILENCE_S):  # type: ignore[operator]
        return f"threshold: feed_silent needs seconds from 1 to {MAX_SILENCE_S}"
    if rule.frequency == "every" and rule.cooldown_s == 0 and kind in {"price_above", "price_below"}:
        return "cooldown_s: a level rule firing every update needs a cooldown (or use per_candle)"
    return None


def rule_from_input(body: RuleIn, intervals: tuple[str, ...], now: int, *, check_targets: bool = True) -> AlertRule:
    """The rule to store; 422 when the relay does not build the interval or the expiry is past."""
    if body.interval not in intervals:
        raise ApiError(
            422, "invalid_request", f"interval: this relay builds {', '.join(intervals)}, not {body.interval}"
        )
    if body.expires_at is not None and body.expires_at <= now:
        raise ApiError(422, "invalid_request", "expires_at: the time is already past")
    values: dict[str, Any] = body.model_dump()
    if not check_targets:
        values["targets"] = []
    return AlertRule(**values)


class RulesBody(msgspec.Struct):
    items: list[AlertRule]
    count: int


class EventsBody(msgspec.Struct):
    """One page of fired alerts, newest first; pass ``next_cursor`` back for older ones."""

    items: list[AlertRecord]
    next_cursor: str | None
    has_more: bool
    count: int


class PreviewFire(msgspec.Struct):
    open_time: int
    value: float
    message: str


class PreviewBody(msgspec.Struct):
    """Where a rule would have fired over the cached candles (``first``/``last`` open times)."""

    candles: int
    first: int | None
    last: int | None
    fires: list[PreviewFire]
    count: int


ALERT_BODIES = (AlertRule, RulesBody, EventsBody, PreviewBody)

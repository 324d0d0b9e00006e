"""The "New alert" form's values as a rule body, checked before anything is sent to the relay.

A kind needs some inputs and not others (:func:`kind_inputs`); :func:`draft_body` builds the body the
relay's ``POST /api/v1/alerts/rules`` takes and lists the problems a person can fix at once, keyed by the
body's field names, which are also the names the relay's 422 messages start with. Pure: no Streamlit, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

KINDS: dict[str, str] = {
    "price_above": "Price above",
    "price_below": "Price below",
    "cross": "Crosses (either way)",
    "cross_up": "Crosses up",
    "cross_down": "Crosses down",
    "channel_enter": "Enters a channel",
    "channel_exit": "Leaves a channel",
    "pct_move": "Moves by %",
    "volume_spike": "Volume spike",
    "feed_silent": "Feed silent",
}
FREQUENCIES: dict[str, str] = {
    "once": "Once",
    "per_candle": "Once per candle",
    "per_close": "On candle close",
    "every": "Every time (cooldown)",
}
LEVEL_KINDS = frozenset({"price_above", "price_below", "cross", "cross_up", "cross_down"})
CROSS_KINDS = frozenset({"cross", "cross_up", "cross_down"})
CHANNEL_KINDS = frozenset({"channel_enter", "channel_exit"})
MAX_SILENCE_S = 86_400
TARGET_HINT = "one per line: a webhook https://… or an Apprise URL such as tgram://, discord://, mailto://"


def kind_inputs(kind: str) -> frozenset[str]:
    """The inputs a kind uses, of ``level``, ``channel``, ``pct``, ``factor``, ``lookback``, ``seconds``, ``watch``."""
    if kind in LEVEL_KINDS:
        return frozenset({"level", "watch"})
    if kind in CHANNEL_KINDS:
        return frozenset({"channel", "watch"})
    if kind == "pct_move":
        return frozenset({"pct", "lookback", "watch"})
    if kind == "volume_spike":
        return frozenset({"factor", "lookback"})
    return frozenset({"seconds"})


@dataclass
class Draft:
    """What the form holds; only the inputs of the chosen kind are read."""

    symbol: str
    interval: str
    kind: str = "price_above"
    level: float | None = None
    level_indicator: str | None = None  # cross kinds: cross this indicator instead of a fixed level
    low: float | None = None
    high: float | None = None
    pct: float | None = None
    lookback: int | None = None
    factor: float | None = None
    seconds: float | None = None
    watch: str = "close"
    frequency: str = "once"
    cooldown_s: int = 0
    expires_at: int | None = None  # ms since the epoch
    targets: str = ""
    note: str = ""


def split_targets(text: str) -> list[str]:
    """One URL per line (blank lines and surrounding spaces ignored)."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def draft_body(draft: Draft, now_ms: int) -> tuple[dict[str, Any], dict[str, str]]:
    """The rule body for the relay, and the problems found (field → reason); send only when there are none."""
    inputs = kind_inputs(draft.kind)
    problems: dict[str, str] = {}
    threshold: float | list[float] | str | None = None
    if "level" in inputs:
        if draft.level_indicator and draft.kind in CROSS_KINDS:
            threshold = draft.level_indicator
            if threshold == draft.watch:
                problems["threshold"] = "choose a level or an indicator other than the watched value"
        elif _number(draft.level) and draft.level > 0:  # type: ignore[operator]
            threshold = float(draft.level)  # type: ignore[arg-type]
        else:
            problems["threshold"] = "enter the price level, above 0"
    elif "channel" in inputs:
        if not (_number(draft.low) and _number(draft.high)):
            problems["threshold"] = "enter both bounds of the channel"
        elif draft.low >= draft.high:  # type: ignore[operator]
            problems["threshold"] = "the low bound must be below the high bound"
        else:
            threshold = [float(draft.low), float(draft.high)]  # type: ignore[arg-type]
    elif "pct" in inputs:
        if _number(draft.pct) and draft.pct > 0:  # type: ignore[operator]
            threshold = float(draft.pct)  # type: ignore[arg-type]
        else:
            problems["threshold"] = "enter a move in %, above 0 (like 2.5)"
    elif "seconds" in inputs:
        if _number(draft.seconds) and 1 <= draft.seconds <= MAX_SILENCE_S:  # type: ignore[operator]
            threshold = float(draft.seconds)  # type: ignore[arg-type]
        else:
            problems["threshold"] = f"enter the silence in seconds, from 1 to {MAX_SILENCE_S:,}"
    if "lookback" in inputs and not (draft.lookback is not None and draft.lookback >= 1):
        problems["lookback"] = "enter how many candles to look back (1 or more)"
    if "factor" in inputs and not (_number(draft.factor) and draft.factor > 0):  # type: ignore[operator]
        problems["factor"] = "enter the factor over the mean volume (like 3)"
    if draft.frequency == "every" and draft.cooldown_s <= 0:
        problems["cooldown_s"] = "set a cooldown above 0 s (or choose once per candle)"
    if draft.expires_at is not None and draft.expires_at <= now_ms:
        problems["expires_at"] = "the expiry is already past"
    targets = split_targets(draft.targets)
    bad = [t for t in targets if "://" not in t]
    if bad:
        problems["targets"] = f"{bad[0][:60]!r} is not a URL (https://…, tgram://…, discord://…)"
    body: dict[str, Any] = {
        "symbol": draft.symbol,
        "interval": draft.interval,
        "kind": draft.kind,
        "threshold": threshold,
        "watch": draft.watch if "watch" in inputs else "close",
        "frequency": draft.frequency,
        "cooldown_s": int(draft.cooldown_s) if draft.frequency == "every" else 0,
        "lookback": draft.lookback if "lookback" in inputs else None,
        "factor": draft.factor if "factor" in inputs else None,
        "expires_at": draft.expires_at,
        "targets": targets,
        "enabled": True,
        "note": draft.note.strip(),
    }
    return body, problems


def _number(x: float | None) -> bool:
    return x is not None and math.isfinite(x)

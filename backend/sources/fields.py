"""One field of a recorded trade → a typed value, or ``Bad`` naming what is wrong with it.

File readers and the Binance event parser read numbers, epochs, flags and
taker sides from text or JSON values of every spelling exchanges use; each
turns a bad value into a reject reason (``not_numeric``, ``bad_side``, …)
rather than an exception, so one bad row never stops a replay.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation

import numpy as np

_US_FROM = 10**14  # an epoch this large is in microseconds (in ms it would be year 5138)
_NS_FROM = 10**17
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Bad(Exception):
    """A row is unusable for ``reason``; caught per row, never escapes a reader."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def epoch_ms(ts: int) -> int:
    """Milliseconds from an epoch in ms, µs (newer Binance dumps) or ns."""
    if ts >= _NS_FROM:
        return ts // 1_000_000
    return ts // 1000 if ts >= _US_FROM else ts


def epoch_ms_array(ts: np.ndarray) -> np.ndarray:
    """:func:`epoch_ms` of a whole column."""
    if len(ts) and ts.max() >= _US_FROM:
        return np.where(ts >= _NS_FROM, ts // 1_000_000, np.where(ts >= _US_FROM, ts // 1000, ts))
    return ts


def seconds_to_ms(value: str | float | Decimal) -> int:
    """Floor of seconds × 1000, exact on the decimal text (``1.001`` is 1001 ms, never 1000)."""
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value).strip())
        return int((d * 1000).to_integral_value(rounding=ROUND_FLOOR))
    except (InvalidOperation, ValueError, OverflowError):
        raise Bad("not_numeric") from None


def iso_ms(text: object) -> int:
    """ISO 8601 time (Coinbase: microseconds, ``Z``) → epoch ms, exact integer arithmetic."""
    try:
        dt = datetime.fromisoformat(str(text))
    except ValueError:
        raise Bad("bad_time") from None
    if dt.tzinfo is None:
        raise Bad("bad_time")
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def as_float(value: object) -> float:
    """A price or quantity, from a number or its text."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise Bad("not_numeric") from None


def as_int(value: object) -> int:
    """An integer (epoch, id, count), from a number or its text; never a boolean."""
    if isinstance(value, bool):
        raise Bad("not_numeric")
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        raise Bad("not_numeric") from None


def int_or(value: object, default: int) -> int:
    """An id that may be missing or not numeric (ccxt ids are strings): file order then."""
    try:
        return as_int(value)
    except Bad:
        return default


def flag(value: object) -> bool:
    """A true/false field (Binance ``is_buyer_maker``, JSON ``m``)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise Bad("bad_side")


def taker_buy(side: object) -> bool:
    """Taker side text → taker bought; an empty side is unknown and counts as a sell."""
    text = str(side).strip().lower()
    if text in ("buy", "b"):
        return True
    if text in ("sell", "s", ""):
        return False
    raise Bad("bad_side")

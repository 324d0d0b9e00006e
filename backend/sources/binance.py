"""Binance trade and aggTrade WebSocket events → trades: in bulk with typed msgspec structs, or one by one.

Both readers of these events live here, so they read the same fields the same
way: symbol ``s``, time ``T``, price ``p``, quantity ``q``, taker sold when
``m``; the id is ``t`` of a trade or ``a`` of an aggTrade, which also stands
for ``l - f + 1`` raw trades; a combined stream wraps the event as
``{"stream": …, "data": …}``.

- :func:`decode_trade_messages` is the ingest hot path: typed decoding of a
  whole batch (about 6× the stdlib ``json`` per message), prices and
  quantities read from strings in lax mode, columns built inline.
- :func:`trade_fields` reads one event already decoded as plain JSON (a
  WebSocket capture replayed from a file), field by field, naming the reject
  reason of a bad field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from backend.models import Rejects, TradeBatch
from backend.sources.fields import Bad, as_float, as_int, flag

TRADE_EVENTS = ("trade", "aggTrade")


class BinanceTrade(msgspec.Struct, frozen=True):
    """``<symbol>@trade`` and ``<symbol>@aggTrade`` payloads (``t`` or ``a`` as the id)."""

    e: str
    s: str
    p: float
    q: float
    T: int
    m: bool
    t: int = 0
    a: int = 0
    f: int = 0
    l: int = -1  # noqa: E741 (Binance's field name)


class _Message(msgspec.Struct, frozen=True):
    """A raw event, or the combined-stream wrapper ``{"stream": …, "data": …}`` around one."""

    e: str = ""
    s: str = ""
    p: float = 0.0
    q: float = 0.0
    T: int = 0
    m: bool = False
    t: int = 0
    a: int = 0
    f: int = 0
    l: int = -1  # noqa: E741
    data: BinanceTrade | None = None


_one = msgspec.json.Decoder(_Message, strict=False)
_many = msgspec.json.Decoder(list[_Message], strict=False)


def _decode_each(messages: Sequence[bytes], rejects: Rejects) -> list[_Message]:
    out = []
    for raw in messages:
        try:
            out.append(_one.decode(raw))
        except msgspec.DecodeError:
            rejects.add("malformed_message")
    return out


def decode_trade_messages(messages: Sequence[bytes], rejects: Rejects | None = None) -> TradeBatch:
    """Decode raw event messages into one validated batch; malformed ones are counted, not raised.

    The messages are decoded as one JSON array (one call instead of one per
    message); only when that fails are they decoded one by one to find the bad ones.
    """
    rejects = rejects if rejects is not None else Rejects()
    try:
        decoded = _many.decode(b"[" + b",".join(messages) + b"]")
    except msgspec.DecodeError:
        decoded = _decode_each(messages, rejects)
    events = [m.data or m for m in decoded]
    trades = TRADE_EVENTS
    if any(ev.e not in trades for ev in events):
        rejects.add("not_a_trade", sum(ev.e not in trades for ev in events))
        events = [ev for ev in events if ev.e in trades]
    table: dict[str, int] = {}
    batch = TradeBatch.from_columns(
        [],
        [table.setdefault(ev.s, len(table)) for ev in events],
        [ev.T for ev in events],
        [ev.p for ev in events],
        [ev.q for ev in events],
        [ev.a if ev.e == "aggTrade" else ev.t for ev in events],
        [not ev.m for ev in events],
        [ev.l - ev.f + 1 if ev.e == "aggTrade" and ev.l >= ev.f else 1 for ev in events],
    )
    batch.symbols = list(table)
    batch.rejects = rejects
    return batch.validated()


def unwrap(message: Any) -> tuple[str, Any]:
    """``(stream name, event)`` of a plain-JSON message: a combined-stream wrapper's payload, or the message itself."""
    if isinstance(message, dict) and isinstance(message.get("data"), dict) and "stream" in message:
        return str(message["stream"]), message["data"]
    return "", message


def trade_fields(kind: str, event: Mapping[str, Any]) -> tuple[str, int, float, float, int, bool, int]:
    """``(symbol, ts, price, qty, trade_id, taker_buy, count)`` of one ``trade`` or ``aggTrade`` event.

    Strict, for plain JSON: a missing field raises ``Bad("missing_field")``, a
    bad value ``Bad`` with its reason; an aggTrade's count is not clamped, so a
    bad ``f``/``l`` pair is rejected downstream rather than read as one trade.
    """
    try:
        if kind == "aggTrade":
            ts, tid, count = as_int(event["T"]), as_int(event["a"]), as_int(event["l"]) - as_int(event["f"]) + 1
        else:
            ts, tid, count = as_int(event["T"]), as_int(event["t"]), 1
        return event["s"], ts, as_float(event["p"]), as_float(event["q"]), tid, not flag(event["m"]), count
    except KeyError:
        raise Bad("missing_field") from None

"""Binance trade and aggTrade WebSocket events → TradeBatch, with typed msgspec structs.

Typed decoding is what keeps the ingest path fast (about 6× the stdlib ``json``
per message); prices and quantities arrive as strings and are read in lax mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from backend.models import Rejects, TradeBatch


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
    if any(ev.e not in ("trade", "aggTrade") for ev in events):
        rejects.add("not_a_trade", sum(ev.e not in ("trade", "aggTrade") for ev in events))
        events = [ev for ev in events if ev.e in ("trade", "aggTrade")]
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

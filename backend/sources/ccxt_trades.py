"""ccxt's symbols and trades → the pipeline's (pure): ours (``BTCUSDT``) ↔ the exchange's unified ones
(``BTC/USDT``), and trades with their id, taker side and, for Binance aggregate trades, the raw trades each
stands for; a trade with a missing or bad field is counted by reason; ids already seen are dropped."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from backend.models import Rejects, TradeBatch, normalize_symbol

SEEN_IDS = 20_000  # trade ids remembered per symbol to drop the overlap of REST and WebSocket


def symbol_table(markets: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Our symbol → the exchange's unified symbol. Pure.

    Of the markets of one pair an active one wins over an inactive one, then spot over derivatives, then
    the first listed. A market without a base or a quote is no pair.
    """
    out: dict[str, tuple[int, str]] = {}
    for unified, market in markets.items():
        base, quote = market.get("base"), market.get("quote")
        ours = normalize_symbol(f"{base}{quote}") if base and quote else None
        if ours is None:
            continue
        rank = (0 if market.get("spot") else 1) + (0 if market.get("active", True) is not False else 2)
        if ours not in out or rank < out[ours][0]:
            out[ours] = (rank, unified)
    return {ours: unified for ours, (_, unified) in out.items()}


def trades_batch(trades: Sequence[Mapping[str, Any]], symbol: str, rejects: Rejects, seen: SeenIds) -> TradeBatch:
    """ccxt trades of one symbol → a validated batch; already-seen ids are dropped, bad trades counted. Pure."""
    ts: list[int] = []
    price: list[float] = []
    qty: list[float] = []
    ids: list[int] = []
    buy: list[bool] = []
    count: list[int] = []
    for t in trades:
        key = t.get("id")
        if key is not None and not seen.add(str(key)):
            continue
        stamp, p, q, side = t.get("timestamp"), t.get("price"), t.get("amount"), t.get("side")
        if stamp is None or p is None or q is None:
            rejects.add("missing_field")
            continue
        if side not in ("buy", "sell"):
            rejects.add("bad_side")
            continue
        info = t.get("info") if isinstance(t.get("info"), Mapping) else {}
        ts.append(int(stamp))
        price.append(float(p))
        qty.append(float(q))
        ids.append(int(key) if isinstance(key, str) and key.isdigit() else seen.ordinal)
        buy.append(side == "buy")
        count.append(_raw_trades(info))
    batch = TradeBatch.from_columns([symbol], [0] * len(ts), ts, price, qty, ids, buy, count)
    batch.rejects = rejects
    return batch.validated()


def _raw_trades(info: Mapping[str, Any]) -> int:
    """Raw trades behind one Binance aggregate trade (``l - f + 1``); 1 for any other trade."""
    try:
        n = int(info["l"]) - int(info["f"]) + 1
    except (KeyError, TypeError, ValueError):
        return 1
    return n if n >= 1 else 1


class SeenIds:
    """The last ``SEEN_IDS`` trade ids of one symbol: REST and WebSocket overlap, reconnects repeat."""

    def __init__(self, size: int = SEEN_IDS) -> None:
        self.ids: set[str] = set()
        self.order: deque[str] = deque()
        self.size = size
        self.ordinal = 0  # an increasing id for exchanges whose ids are not numbers

    def add(self, key: str) -> bool:
        """True when ``key`` is new."""
        self.ordinal += 1
        if key in self.ids:
            return False
        self.ids.add(key)
        self.order.append(key)
        if len(self.order) > self.size:
            self.ids.discard(self.order.popleft())
        return True


def joined(batches: Sequence[TradeBatch]) -> TradeBatch:
    """One symbol's batches as one, so the aggregator orders all their trades by (ts, id) together. Pure.

    Every batch of :func:`trades_batch` has the one-symbol table ``[symbol]``; the first non-empty
    batch's table and rejects are kept.
    """
    parts = [b for b in batches if len(b)]
    if any(b.symbols != parts[0].symbols for b in parts):
        raise ValueError(f"batches of one symbol expected, got {sorted({s for b in parts for s in b.symbols})}")
    if len(parts) <= 1:
        return parts[0] if parts else TradeBatch.empty()
    columns = ("sym", "ts", "price", "qty", "trade_id", "taker_buy", "count")
    out = TradeBatch.from_columns(parts[0].symbols, *(np.concatenate([getattr(b, c) for b in parts]) for c in columns))
    out.rejects = parts[0].rejects
    return out

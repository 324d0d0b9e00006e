"""A pandas reference implementation of candles, for property tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend.config import INTERVALS_MS
from backend.models import Candle, Trade, TradeBatch

FIELDS = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "taker_buy_volume",
    "taker_buy_quote_volume",
)


def oracle_candles(batch: TradeBatch, interval: str) -> pd.DataFrame:
    """Every candle (empty periods included) per symbol, indexed by (symbol, open_time)."""
    ms = INTERVALS_MS[interval]
    df = pd.DataFrame(
        {
            "symbol": np.asarray(batch.symbols, dtype=object)[batch.sym],
            "ts": batch.ts,
            "id": batch.trade_id,
            "price": batch.price,
            "qty": batch.qty,
            "buy": batch.taker_buy,
            "n": batch.count,
        }
    ).sort_values(["symbol", "ts", "id"], kind="stable")
    df["open_time"] = df.ts - df.ts % ms
    df["quote"] = df.price * df.qty
    df["bq"] = df.qty.where(df.buy, 0.0)
    df["bqq"] = df.quote.where(df.buy, 0.0)
    g = df.groupby(["symbol", "open_time"], sort=True)
    out = pd.DataFrame(
        {
            "open": g.price.first(),
            "high": g.price.max(),
            "low": g.price.min(),
            "close": g.price.last(),
            "volume": g.qty.sum(),
            "quote_volume": g.quote.sum(),
            "trades": g.n.sum(),
            "taker_buy_volume": g.bq.sum(),
            "taker_buy_quote_volume": g.bqq.sum(),
        }
    )
    frames = []
    for symbol, part in out.groupby(level="symbol"):
        part = part.droplevel("symbol")
        full = part.reindex(range(int(part.index.min()), int(part.index.max()) + 1, ms))
        close = full.close.ffill()
        empty = full.open.isna()
        for col in ("open", "high", "low", "close"):
            full.loc[empty, col] = close[empty]
        for col in ("volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume", "trades"):
            full.loc[empty, col] = 0
        full["symbol"] = symbol
        frames.append(full.reset_index(names="open_time"))
    return pd.concat(frames).set_index(["symbol", "open_time"]).sort_index()


def candles_frame(candles: list[Candle]) -> pd.DataFrame:
    """The aggregator's candles in the oracle's shape."""
    rows = [{"symbol": c.symbol, "open_time": c.open_time, **{f: getattr(c, f) for f in FIELDS}} for c in candles]
    return pd.DataFrame(rows).set_index(["symbol", "open_time"]).sort_index()


def accepted_in_arrival_order(batches: list[TradeBatch], fine_ms: int) -> tuple[TradeBatch, dict[str, int]]:
    """The trades an aggregator keeps when ``batches`` arrive in this order, and the late ones per symbol.

    A trade is late when it is older than the open candle of its symbol's finest interval, i.e. than the
    period of the newest trade of that symbol kept from an earlier batch (a batch is one step of event time:
    within it, order does not matter). Written trade by trade, apart from the aggregator's vectorised check.
    """
    newest: dict[str, int] = {}
    late: dict[str, int] = {}
    kept: list[Trade] = []
    for batch in batches:
        trades = batch.to_trades()
        before = dict(newest)
        for t in trades:
            if t.symbol in before and t.ts_ms < before[t.symbol] - before[t.symbol] % fine_ms:
                late[t.symbol] = late.get(t.symbol, 0) + 1
                continue
            kept.append(t)
            newest[t.symbol] = max(newest.get(t.symbol, t.ts_ms), t.ts_ms)
    return TradeBatch.from_trades(kept), late

"""A JSON array of ccxt trades (``exchange.fetch_trades`` saved to a file, optionally gzipped).

ccxt normalises every exchange's trades, but rounds nothing back: where the
record keeps the exchange's own Binance aggTrade (``info``: a,p,q,f,l,T,m),
that exact payload is used, raw-trade count included.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import msgspec

from backend.sources.fields import Bad, as_float, as_int, flag, int_or, taker_buy
from backend.sources.formats.emitter import Emitter, Parsed, Parser, Row, TimedBatch
from backend.sources.formats.json_document import decode_document
from backend.sources.formats.spec import Format, Sniff


def _trade(default_symbol: str) -> Parser:
    def parse(rec: Any, line: int) -> Parsed:
        """A ccxt trade; its ``info`` Binance aggTrade (a,p,q,f,l,T,m) is exact when present."""
        if not isinstance(rec, dict):
            raise Bad("bad_record")
        symbol = rec.get("symbol") or default_symbol
        info = rec.get("info")
        try:
            if isinstance(info, dict) and "a" in info and "T" in info:
                count = as_int(info["l"]) - as_int(info["f"]) + 1 if "f" in info else 1
                price, qty = as_float(info["p"]), as_float(info["q"])
                return Row(symbol, as_int(info["T"]), price, qty, as_int(info["a"]), not flag(info["m"]), count)
            price, qty, ts = as_float(rec["price"]), as_float(rec["amount"]), as_int(rec["timestamp"])
            return Row(symbol, ts, price, qty, int_or(rec.get("id"), line), taker_buy(rec.get("side") or ""))
        except KeyError:
            raise Bad("missing_field") from None

    return parse


def _read(stream: IO[bytes], em: Emitter, symbol: str | None) -> Iterator[TimedBatch]:
    records = decode_document(stream.read(), msgspec.json.Decoder())
    if not isinstance(records, list):
        raise ValueError("ccxt trade JSON must be an array of trades")
    yield from em.feed_records(records, _trade(symbol or ""))
    yield from em.drain(final=True)


def _detect(sniff: Sniff) -> bool:
    return sniff.stripped[0] == "[" and ('"timestamp"' in sniff.text or '"amount"' in sniff.text)


FORMAT = Format(
    "ccxt_json",
    "a JSON array of ccxt trades (optionally .gz); the exact Binance `info` is used when present",
    _detect,
    _read,
)

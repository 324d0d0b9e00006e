"""Kraken's REST ``/public/Trades`` answer, saved to a file.

The document is ``{"error": [], "result": {PAIR: [[price, volume, time, side, …]], "last": …}}``.

Times are seconds with decimals; they are read as exact decimals so that a
trade at ``…433.9715`` lands in the millisecond Kraken's own candles put it in.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import IO, Any

import msgspec

from backend.sources.fields import Bad, as_float, as_int, seconds_to_ms, taker_buy
from backend.sources.formats.emitter import Emitter, Parsed, Parser, Row, TimedBatch
from backend.sources.formats.json_document import decode_document
from backend.sources.formats.spec import Format, Sniff


def _trade(symbol: str) -> Parser:
    def parse(rec: Any, line: int) -> Parsed:
        """``[price, volume, time_s, "b"|"s", "l"|"m", misc, trade_id]``; time kept exact as Decimal."""
        if not isinstance(rec, list):
            raise Bad("bad_record")
        if len(rec) < 4:
            raise Bad("truncated")
        tid = as_int(rec[6]) if len(rec) > 6 else line  # older answers have no trade id
        return Row(symbol, seconds_to_ms(rec[2]), as_float(rec[0]), as_float(rec[1]), tid, taker_buy(rec[3]))

    return parse


def _read(stream: IO[bytes], em: Emitter, symbol: str | None) -> Iterator[TimedBatch]:
    doc = decode_document(stream.read(), msgspec.json.Decoder(float_hook=Decimal))
    if not isinstance(doc, dict) or not isinstance(doc.get("result"), dict):
        raise ValueError('Kraken trades JSON must be {"error": [...], "result": {PAIR: [...], "last": ...}}')
    if doc.get("error"):
        raise ValueError(f"Kraken answered with an error: {doc['error']}")
    for pair, records in doc["result"].items():
        if pair != "last" and isinstance(records, list):
            yield from em.feed_records(records, _trade(symbol or pair))
    yield from em.drain(final=True)


def _detect(sniff: Sniff) -> bool:
    return sniff.stripped[0] == "{" and '"result"' in sniff.text


FORMAT = Format("kraken_json", "Kraken REST `/public/Trades` answer", _detect, _read)

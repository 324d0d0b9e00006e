"""Raw WebSocket captures (cryptofeed's format): ``<recv_seconds>: <json>`` per line.

Binance trade/aggTrade events (raw or in a combined-stream wrapper) and
Coinbase matches are trades; every other message (depth, tickers, klines) is
counted in ``skipped`` by its kind, and the lines the client sent as ``sent``.
Each trade keeps its receive time as the replay clock, so a paced replay
reproduces the real arrival bursts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Any

import msgspec

from backend.sources import binance
from backend.sources.fields import Bad, as_float, as_int, iso_ms, seconds_to_ms
from backend.sources.formats.emitter import Emitter, Parsed, Parser, Row, TimedBatch
from backend.sources.formats.spec import Format, Sniff

_CAPTURE_LINE = re.compile(rb"^\s*(\d+(?:\.\d+)?):\s?(.*)$", re.DOTALL)
_SENT_LINE = re.compile(rb"^\S+ <-[ >]")
_FIRST_LINE = re.compile(r"\d{9,11}(\.\d+)?: [\[{]")


def _message(recv_ms: int) -> Parser:
    def parse(msg: Any, line: int) -> Parsed:
        """A Binance trade/aggTrade event (raw or in a combined-stream wrapper) or a Coinbase match."""
        stream, msg = binance.unwrap(msg)
        if not isinstance(msg, dict):
            return "array" if isinstance(msg, list) else "other"
        # spot bookTicker events carry no "e": name them by their stream (btcusdt@bookTicker)
        kind = msg.get("e") or msg.get("type") or msg.get("event") or stream.partition("@")[2] or "other"
        if (kind == "trade" and "s" in msg) or kind == "aggTrade":
            return Row(*binance.trade_fields(kind, msg), recv_ms)
        if kind in ("match", "last_match"):  # Coinbase: side is the maker's
            try:
                price, qty, buy = as_float(msg["price"]), as_float(msg["size"]), str(msg["side"]).lower() == "sell"
                return Row(msg["product_id"], iso_ms(msg["time"]), price, qty, as_int(msg["trade_id"]), buy, 1, recv_ms)
            except KeyError:
                raise Bad("missing_field") from None
        return str(kind)

    return parse


def _read(stream: IO[bytes], em: Emitter, symbol: str | None) -> Iterator[TimedBatch]:
    """``<recv_s>: <json>`` per line; header and sent lines are skipped."""
    decoder = msgspec.json.Decoder()
    for line, raw in enumerate(stream, 1):
        if not raw.strip():
            continue
        m = _CAPTURE_LINE.match(raw)
        if m is None:
            if line == 1 and b"<->" in raw:  # the subscribed URL
                continue
            if _SENT_LINE.match(raw):
                em.skipped.add("sent")
                continue
            em.reject("bad_line", line)
            continue
        try:
            recv = seconds_to_ms(m.group(1).decode())
            msg = decoder.decode(m.group(2))
        except (Bad, msgspec.DecodeError):
            em.reject("bad_json", line)
            continue
        em.feed(line, msg, _message(recv))
        if em.pending >= em.chunk:
            yield from em.drain()
    yield from em.drain(final=True)


def _detect(sniff: Sniff) -> bool:
    return sniff.stripped.startswith(("ws://", "wss://")) or _FIRST_LINE.match(sniff.stripped) is not None


FORMAT = Format(
    "ws_capture",
    "raw WebSocket capture, `<recv_seconds>: <json>` per line: Binance trade/aggTrade, Coinbase match; "
    "replayed at the recorded arrival times",
    _detect,
    _read,
)

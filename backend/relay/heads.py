"""What the relay reads of a wire object: a small routing head; the rest stays raw bytes.

Each Redis message is decoded once into the heads of its objects (to route and
order them) plus each object's raw bytes, which reach the clients unchanged.
"""

from __future__ import annotations

import msgspec


class Head(msgspec.Struct):
    """The fields the relay routes and orders by; the rest of an object stays raw bytes."""

    type: str = ""
    symbol: str = ""
    interval: str = ""
    open_time: int | None = 0  # an alert's is its candle's, or null (feed_silent)
    seq: int = 0
    emitted_at: int = 0


_heads = msgspec.json.Decoder(list[Head])
_raws = msgspec.json.Decoder(list[msgspec.Raw])
_head = msgspec.json.Decoder(Head)


def read_head(raw: bytes) -> Head:
    """The head of one encoded object."""
    return _head.decode(raw)


def split_message(data: bytes) -> tuple[list[Head], list[msgspec.Raw]] | None:
    """The heads and raw bytes of a Redis message's objects (an array, or one object); None when unreadable."""
    try:
        return _heads.decode(data), _raws.decode(data)
    except msgspec.ValidationError:
        try:  # a single object instead of an array
            return [_head.decode(data)], [msgspec.Raw(data)]
        except msgspec.DecodeError:
            return None
    except msgspec.DecodeError:
        return None


def newest(a: bytes | None, b: bytes | None) -> bytes | None:
    """The newer of two encodings of a stream's candle, by (open_time, seq); ``b`` wins a tie."""
    if a is None or b is None:
        return b if a is None else a
    ha, hb = _head.decode(a), _head.decode(b)
    return a if (ha.open_time, ha.seq) > (hb.open_time, hb.seq) else b

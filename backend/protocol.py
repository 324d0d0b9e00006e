"""The WebSocket client protocol of ``WS /ws``, both ends of it, declared once.

A client sends one JSON object per message, an *op*::

    {"op": "subscribe", "symbols": ["BTCUSDT"], "intervals": ["1m"], "id": 1}
    {"op": "unsubscribe", "symbols": ["BTCUSDT"]}   (symbols, intervals: default all subscribed)
    {"op": "ping", "id": 2}
    {"op": "subscribe", "alerts": true}              (every alert, whatever its symbol)

Alerts of a symbol reach every client subscribed to any stream of that symbol; a client that
subscribed with ``"alerts": true`` (the dashboard, for its toasts) gets every alert.

The relay answers with frames of two kinds: a JSON array of wire objects
(candles and alerts, :mod:`backend.models`), or one control object
(``subscribed``, ``unsubscribed``, ``pong``, ``resync``, ``error`` with one of
the codes below). A client that stays behind is closed with
``SLOW_CLOSE_CODE``.

The relay uses :func:`decode_op`, :func:`op_streams`, :func:`unsubscribe_selection`,
:func:`op_id_of` and :func:`encode_control`; a client uses :func:`encode_op`
(or :func:`encode_stream_ops`) and :func:`decode_frame`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import msgspec

from backend.models import AlertEvent, Candle, Message, decode_batch, normalize_symbol

MAX_CLIENT_MESSAGE_CHARS = 16_384  # a 200-stream subscribe is about 5 KB
MAX_CLIENT_JSON_DEPTH = 8  # a client op nests 2 deep; deep nesting exhausts the decoder's recursion
SLOW_CLOSE_CODE = 4008  # a client that stays behind is closed with this code
SLOW_CLOSE_REASON = "slow consumer"

OpName = Literal["subscribe", "unsubscribe", "ping"]
OPS: tuple[str, ...] = ("subscribe", "unsubscribe", "ping")
OpId = int | str | None

# error codes of the ``error`` control message
BAD_JSON = "bad_json"
BAD_MESSAGE = "bad_message"
UNKNOWN_OP = "unknown_op"
BAD_SYMBOL = "bad_symbol"
BAD_INTERVAL = "bad_interval"
TOO_MANY_STREAMS = "too_many_streams"
TOO_LARGE = "too_large"
REDIS_UNAVAILABLE = "redis_unavailable"
UNKNOWN_SYMBOL = "unknown_symbol"  # a notice, not an error: the subscription stays for a symbol that may appear
ERROR_CODES = frozenset(
    {BAD_JSON, BAD_MESSAGE, UNKNOWN_OP, BAD_SYMBOL, BAD_INTERVAL, TOO_MANY_STREAMS, TOO_LARGE, REDIS_UNAVAILABLE}
)


def stream_key(symbol: str, interval: str) -> str:
    """The name of a stream in control messages and stats: ``BTCUSDT:1m``."""
    return f"{symbol}:{interval}"


def split_stream_key(key: str) -> tuple[str, str]:
    """``BTCUSDT:1m`` → ``("BTCUSDT", "1m")``."""
    symbol, interval = key.split(":", 1)
    return symbol, interval


# ---------------------------------------------------------------- client → relay


class ClientOp(msgspec.Struct, omit_defaults=True):
    """A message from a client; ``id`` is echoed in the reply."""

    op: str
    symbols: list[str] | None = None
    intervals: list[str] | None = None
    id: OpId = None
    alerts: bool | None = None  # subscribe/unsubscribe every alert


class ProtocolError(Exception):
    """A malformed client message: answered with an ``error`` control message, the connection stays up."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_encoder = msgspec.json.Encoder()
_op_decoder = msgspec.json.Decoder(ClientOp)


def encode_op(
    op: OpName,
    symbols: Sequence[str] | None = None,
    intervals: Sequence[str] | None = None,
    *,
    op_id: OpId = None,
    alerts: bool | None = None,
) -> str:
    """A client's message, ready to send: ``encode_op("ping")`` → ``{"op":"ping"}``."""
    return _encoder.encode(
        ClientOp(
            op,
            list(symbols) if symbols is not None else None,
            list(intervals) if intervals is not None else None,
            op_id,
            alerts,
        )
    ).decode()


def encode_stream_ops(op: OpName, streams: Iterable[tuple[str, str]]) -> list[str]:
    """(Un)subscribe ``(symbol, interval)`` streams: one message per interval, symbols sorted."""
    by_interval: dict[str, list[str]] = {}
    for symbol, interval in sorted(streams):
        by_interval.setdefault(interval, []).append(symbol)
    return [encode_op(op, symbols, [interval]) for interval, symbols in by_interval.items()]


def json_depth_exceeds(text: str, limit: int) -> bool:
    """True when ``text`` nests arrays or objects more than ``limit`` deep (brackets inside strings ignored).

    Checked before decoding: msgspec (like ``json``) recurses per level and raises ``RecursionError``
    at about a thousand, which would end the connection. Few brackets means shallow, so most
    messages cost two ``count`` calls; only the rest are scanned.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def decode_op(
    text: str, *, max_chars: int = MAX_CLIENT_MESSAGE_CHARS, max_depth: int = MAX_CLIENT_JSON_DEPTH
) -> ClientOp:
    """A client's message, checked for size, nesting, JSON, shape and a known op; else :class:`ProtocolError`."""
    if len(text) > max_chars:
        raise ProtocolError(TOO_LARGE, f"messages are limited to {max_chars} characters")
    if json_depth_exceeds(text, max_depth):
        raise ProtocolError(TOO_LARGE, f"messages are limited to {max_depth} levels of nesting")
    try:
        op = _op_decoder.decode(text)
    except msgspec.ValidationError as exc:
        raise ProtocolError(BAD_MESSAGE, str(exc)) from None
    except msgspec.DecodeError:
        raise ProtocolError(BAD_JSON, 'messages must be JSON objects like {"op": "subscribe", …}') from None
    if op.op not in OPS:
        raise ProtocolError(UNKNOWN_OP, f"unknown op {op.op!r}: use subscribe, unsubscribe or ping")
    return op


def op_streams(op: ClientOp, intervals: Sequence[str], *, required: bool) -> list[str]:
    """Validated stream keys of a subscribe/unsubscribe (symbols × intervals, in order, no repeats).

    ``intervals`` are the ones served; an op that names none means all of them.
    """
    if required and not op.symbols:
        raise ProtocolError(BAD_MESSAGE, "symbols must list at least one symbol")
    symbols: list[str] = []
    for raw in op.symbols or ():
        sym = normalize_symbol(raw)
        if sym is None:
            raise ProtocolError(BAD_SYMBOL, f"bad symbol {raw[:40]!r}: use 2 to 20 letters or digits, like BTCUSDT")
        symbols.append(sym)
    asked = list(intervals) if op.intervals is None else op.intervals
    if not asked:
        raise ProtocolError(BAD_MESSAGE, "intervals must not be empty")
    for name in asked:
        if name not in intervals:
            raise ProtocolError(BAD_INTERVAL, f"unknown interval {name[:20]!r}; choose from {', '.join(intervals)}")
    return list(dict.fromkeys(stream_key(s, i) for s in symbols for i in asked))


def unsubscribe_selection(op: ClientOp, subscribed: Iterable[str]) -> list[str]:
    """The subscribed stream keys an unsubscribe names, sorted (no symbols or intervals: all of them)."""
    symbols = {normalize_symbol(s) for s in op.symbols} if op.symbols else None
    intervals = set(op.intervals) if op.intervals else None
    selected = []
    for key in sorted(subscribed):
        sym, interval = split_stream_key(key)
        if (symbols is None or sym in symbols) and (intervals is None or interval in intervals):
            selected.append(key)
    return selected


def op_id_of(text: str, max_depth: int = MAX_CLIENT_JSON_DEPTH) -> OpId:
    """The ``id`` of a message that failed validation, when it has a readable one."""
    if json_depth_exceeds(text, max_depth):
        return None
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return None
    op_id = value.get("id") if isinstance(value, dict) else None
    return op_id if isinstance(op_id, int | str) and not isinstance(op_id, bool) else None


# ---------------------------------------------------------------- relay → client


class Control(msgspec.Struct, tag_field="type", omit_defaults=True):
    """A control message: a single JSON object, never an array (fields left unset are omitted)."""


class Subscribed(Control, tag="subscribed"):
    streams: list[str]
    id: OpId = None
    alerts: bool | None = None  # present when the op asked for every alert


class Unsubscribed(Control, tag="unsubscribed"):
    streams: list[str]
    id: OpId = None
    alerts: bool | None = None


class Pong(Control, tag="pong"):
    id: OpId = None


class Resync(Control, tag="resync"):
    """The relay's Redis subscription was restored: a fresh snapshot of every stream follows."""

    reason: str


class Error(Control, tag="error"):
    code: str
    message: str
    id: OpId = None


class Notice(Control, tag="notice"):
    """Something the client should know that is not an error: ``unknown_symbol`` (still subscribed)."""

    code: str
    message: str
    symbols: list[str] = []
    id: OpId = None


ControlMessage = Subscribed | Unsubscribed | Pong | Resync | Error | Notice
ServerFrame = ControlMessage | list[Message]

_object_decoder = msgspec.json.Decoder(ControlMessage | Candle | AlertEvent)


def encode_control(message: ControlMessage) -> str:
    """A control message as the text of one WebSocket message."""
    return _encoder.encode(message).decode()


def decode_frame(data: str | bytes) -> ServerFrame:
    """A frame from the relay: a control message, or the list of candles and alerts it carries.

    Raises ``msgspec.DecodeError`` (or its subclass ``ValidationError``) for anything else.
    """
    raw = data.encode() if isinstance(data, str) else data
    stripped = raw.lstrip()
    if stripped[:1] == b"{":
        obj = _object_decoder.decode(stripped)
        return [obj] if isinstance(obj, Candle | AlertEvent) else obj
    return decode_batch(stripped)

"""The client side of the relay's WebSocket protocol, written by hand: one function per direction.

``backend/protocol.py`` will define these messages for both ends; until
then the listener builds its ops and reads control messages only here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from services.feed.book import Stream


def subscription_ops(op: str, streams: Iterable[Stream]) -> list[str]:
    """``subscribe`` / ``unsubscribe`` messages for ``streams``: one per interval."""
    by_interval: dict[str, list[str]] = {}
    for sym, interval in sorted(streams):
        by_interval.setdefault(interval, []).append(sym)
    return [json.dumps({"op": op, "symbols": syms, "intervals": [interval]}) for interval, syms in by_interval.items()]


def control_message(frame: bytes) -> dict[str, Any] | None:
    """A one-object frame as a control message (subscribed, error, resync…); None for a candle or an alert."""
    obj = json.loads(frame)
    if obj.get("type") in {"candle", "alert"}:
        return None
    return obj

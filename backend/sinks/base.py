"""The Sink protocol: where the ingest sends each flush of candles.

A sink takes a batch on the hot path (``put``: cheap, or one round trip at most),
flushes what it still holds on ``close`` within a bounded time (and says how many
candles it could not deliver: the ingest's exit status), and reports its
figures in ``stats``; the ingest merges them into its stats hash, so the relay's
``/api/v1/stats`` and the System page see every sink's health. Adding a sink is a
module here plus one line in :func:`backend.sinks.default_sinks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from backend.models import Candle


class Sink(Protocol):
    """A destination for the aggregator's candles (forming and closed)."""

    def put(self, candles: Sequence[Candle]) -> object:
        """Take one flush's candles; never raises for an outage (a sink keeps what it must and retries)."""
        ...

    def close(self, timeout: float = 10.0) -> int:
        """Deliver what is still pending, waiting at most about ``timeout`` seconds; returns how many
        candles that must be kept are still undelivered (0: everything delivered)."""
        ...

    def stats(self) -> dict[str, Any]:
        """Figures for the ingest's stats hash (JSON-serialisable), e.g. ``{"redis_ok": True}``."""
        ...

"""Redis keys for candles: what the ingest writes and what the relay reads.

``{prefix}:latest:{symbol}:{interval}`` the newest candle (JSON, with a TTL);
``{prefix}:recent:{symbol}:{interval}`` closed candles, a sorted set scored by
open_time and capped; ``{prefix}:symbols`` the symbols seen;
``{prefix}:stats:{name}`` a hash of figures a process reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backend.models import Candle


@dataclass(frozen=True)
class CacheKeys:
    prefix: str = "candles"

    def latest(self, symbol: str, interval: str) -> str:
        return f"{self.prefix}:latest:{symbol}:{interval}"

    def recent(self, symbol: str, interval: str) -> str:
        return f"{self.prefix}:recent:{symbol}:{interval}"

    @property
    def symbols(self) -> str:
        return f"{self.prefix}:symbols"

    def stats(self, name: str) -> str:
        return f"{self.prefix}:stats:{name}"


def queue_candle_writes(
    pipe: Any,
    keys: CacheKeys,
    candles: Sequence[Candle],
    encoded: Sequence[bytes],
    *,
    recent_cap: int,
    latest_ttl_s: int,
) -> None:
    """Queue the cache writes of one flush on a (non-transactional) pipeline.

    Per changed stream: one SET of its newest candle, and when candles of it
    closed, one ZREMRANGEBYSCORE + one ZADD of all of them (idempotent on
    open_time, so a replay or retry never duplicates) + one ZREMRANGEBYRANK cap.
    """
    newest: dict[tuple[str, str], bytes] = {}
    closed: dict[tuple[str, str], list[tuple[Candle, bytes]]] = {}
    for c, raw in zip(candles, encoded, strict=True):
        stream = (c.symbol, c.interval)
        newest[stream] = raw
        if c.closed:
            closed.setdefault(stream, []).append((c, raw))
    for (symbol, interval), raw in newest.items():
        pipe.set(keys.latest(symbol, interval), raw, ex=latest_ttl_s)
    for (symbol, interval), items in closed.items():
        key = keys.recent(symbol, interval)
        pipe.zremrangebyscore(key, items[0][0].open_time, items[-1][0].open_time)
        pipe.zadd(key, {raw: c.open_time for c, raw in items})
        pipe.zremrangebyrank(key, 0, -recent_cap - 1)

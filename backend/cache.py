"""Redis keys for candles: what the ingest writes and what the relay reads.

``{prefix}:latest:{symbol}:{interval}`` the newest candle (JSON, with a TTL);
``{prefix}:recent:{symbol}:{interval}`` closed candles, a sorted set scored by
open_time and capped; ``{prefix}:symbols`` the symbols seen;
``{prefix}:stats:{name}`` a hash of figures a process reports; ``{prefix}:resume`` a hash,
one field per symbol: the ingest's open candle of every interval, its ``seq`` and the last
trade counted (:class:`backend.aggregate.SymbolState`, MessagePack: a fifth of JSON's cost,
whose shortest-round-trip floats dominate), so a restarted ingest continues.
``{prefix}:relays`` the set of relay workers (``HOST:PID``) and ``{prefix}:relay:{worker}``
each one's figures (JSON, a 5 s TTL refreshed every second: :mod:`backend.relay.report`).

The relay reads these only through the functions at the end (``redis`` is an
asyncio client); stream keys there are ``SYMBOL:INTERVAL`` (``backend.protocol.stream_key``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from backend.intervals import INTERVALS_MS
from backend.models import Candle, decode_message, normalize_symbol
from backend.protocol import split_stream_key
from backend.streams import SymbolState

if TYPE_CHECKING:
    import redis.asyncio as aioredis

MGET_CHUNK = 500  # keys per MGET of a snapshot
_stats_value = msgspec.json.Decoder()
_state_encoder = msgspec.msgpack.Encoder()
_state_decoder = msgspec.msgpack.Decoder(SymbolState)

log = logging.getLogger(__name__)


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

    @property
    def resume(self) -> str:
        return f"{self.prefix}:resume"

    @property
    def relays(self) -> str:
        return f"{self.prefix}:relays"

    def relay(self, worker: str) -> str:
        return f"{self.prefix}:relay:{worker}"


def queue_candle_writes(
    pipe: Any,
    keys: CacheKeys,
    candles: Sequence[Candle],
    encoded: Sequence[bytes],
    *,
    recent_cap: int,
    latest_ttl_s: int,
    latest_written: dict[tuple[str, str], int] | None = None,
) -> dict[tuple[str, str], int]:
    """Queue the cache writes of one flush on a (non-transactional) pipeline; returns, per stream whose
    ``latest`` it sets, that candle's open_time (for the caller's ``latest_written`` once the pipeline ran).

    Per changed stream: one SET of its newest candle (the latest period; of it, the
    last update), unless ``latest_written`` holds a newer period for it (a flush that
    carries only an exchange's final candle for an older period leaves ``latest`` on
    the newer one), and when candles of it closed, a ZREMRANGEBYSCORE per run of
    consecutive periods + one ZADD of all of them (one entry per open_time, so a
    replay, a retry or an exchange's final candle replacing an older period never
    duplicates) + one ZREMRANGEBYRANK cap. Usually a flush's closed candles are
    one run in order; an exchange's final candle for an older period can come
    after newer ones.
    """
    newest: dict[tuple[str, str], tuple[int, bytes]] = {}
    closed: dict[tuple[str, str], dict[int, bytes]] = {}
    for c, raw in zip(candles, encoded, strict=True):
        stream = (c.symbol, c.interval)
        held = newest.get(stream)
        if held is None or c.open_time >= held[0]:
            newest[stream] = (c.open_time, raw)
        if c.closed:
            closed.setdefault(stream, {})[c.open_time] = raw  # a later update of a period replaces an earlier one
    written = latest_written or {}
    latest: dict[tuple[str, str], int] = {}
    for (symbol, interval), (open_time, raw) in newest.items():
        if open_time < written.get((symbol, interval), open_time):
            continue
        pipe.set(keys.latest(symbol, interval), raw, ex=latest_ttl_s)
        latest[(symbol, interval)] = open_time
    for (symbol, interval), by_time in closed.items():
        key = keys.recent(symbol, interval)
        for lo, hi in period_runs(sorted(by_time), INTERVALS_MS[interval]):
            pipe.zremrangebyscore(key, lo, hi)
        pipe.zadd(key, {raw: t for t, raw in by_time.items()})
        pipe.zremrangebyrank(key, 0, -recent_cap - 1)
    return latest


def period_runs(open_times: Sequence[int], period_ms: int) -> list[tuple[int, int]]:
    """The sorted ``open_times`` as runs of consecutive periods, ``(first, last)`` each: what a range may remove
    without touching a stored period that is not being written."""
    runs: list[tuple[int, int]] = []
    for t in open_times:
        if runs and t - runs[-1][1] == period_ms:
            runs[-1] = (runs[-1][0], t)
        else:
            runs.append((t, t))
    return runs


def save_resume_states(client: Any, keys: CacheKeys, states: Sequence[SymbolState]) -> None:
    """Store the changed symbols' aggregator states (one HSET); raises ``redis.RedisError`` on failure."""
    if states:
        client.hset(keys.resume, mapping={s.symbol: _state_encoder.encode(s) for s in states})


def load_resume_states(client: Any, keys: CacheKeys) -> tuple[list[SymbolState], list[str]]:
    """The stored states, with each stream's ``seq`` raised to its ``latest`` candle's when that is higher
    (a kill between the cache write and the state write); second: the symbols whose state did not decode."""
    states: list[SymbolState] = []
    bad: list[str] = []
    for field, raw in sorted(client.hgetall(keys.resume).items()):
        try:
            states.append(_state_decoder.decode(raw))
        except msgspec.DecodeError:
            bad.append(field.decode(errors="replace"))
    pairs = [(state, s) for state in states for s in state.streams]
    latest = client.mget([keys.latest(state.symbol, s.interval) for state, s in pairs]) if pairs else []
    for (_, s), raw in zip(pairs, latest, strict=True):
        if raw is not None:
            with contextlib.suppress(msgspec.DecodeError, ValueError):
                s.seq = max(s.seq, decode_message(raw).seq)  # type: ignore[union-attr]
    return states, bad


# ---------------------------------------------------------------- reads (the relay)


async def fetch_latest(redis: aioredis.Redis, keys: CacheKeys, streams: Iterable[str]) -> dict[str, bytes]:
    """The cached ``latest`` candle of each stream key (absent streams are left out), by MGETs of ``MGET_CHUNK``."""
    streams = list(streams)
    out: dict[str, bytes] = {}
    for i in range(0, len(streams), MGET_CHUNK):
        chunk = streams[i : i + MGET_CHUNK]
        values = await redis.mget([keys.latest(*split_stream_key(k)) for k in chunk])
        out.update({k: v for k, v in zip(chunk, values, strict=True) if v is not None})
    return out


async def read_stream(
    redis: aioredis.Redis, keys: CacheKeys, symbol: str, interval: str, limit: int
) -> tuple[bool, list[bytes], bytes | None]:
    """One round trip: whether the symbol was seen, its last ``limit`` closed candles and its latest one."""
    pipe = redis.pipeline(transaction=False)
    pipe.sismember(keys.symbols, symbol)
    pipe.zrange(keys.recent(symbol, interval), -limit, -1)
    pipe.get(keys.latest(symbol, interval))
    known, closed, latest = await pipe.execute()
    return bool(known), list(closed), latest


async def known_symbols(redis: aioredis.Redis, keys: CacheKeys, symbols: Sequence[str]) -> set[str]:
    """Which of ``symbols`` are in the symbol set (one round trip)."""
    flags = await redis.smismember(keys.symbols, list(symbols)) if symbols else []
    return {s for s, flag in zip(symbols, flags, strict=True) if flag}


async def read_symbols(redis: aioredis.Redis, keys: CacheKeys) -> list[str]:
    """The symbols seen, sorted: only well-formed ones (whoever else wrote to Redis, markup is never served)."""
    return valid_symbols(await redis.smembers(keys.symbols))


def valid_symbols(members: Iterable[bytes]) -> list[str]:
    """The members that are symbols in our form (``BTCUSDT``), sorted; anything else is logged and dropped."""
    good, bad = [], []
    for raw in members:
        name = raw.decode("utf-8", "replace")
        (good if normalize_symbol(name) == name else bad).append(name)
    if bad:
        log.warning("ignored %d malformed symbol(s) in the Redis symbol set, e.g. %r", len(bad), bad[0][:40])
    return sorted(good)


async def symbol_seen(redis: aioredis.Redis, keys: CacheKeys, symbol: str, intervals: Iterable[str]) -> bool:
    """Whether the symbol is in the symbol set or has a latest candle of one of ``intervals``."""
    pipe = redis.pipeline(transaction=False)
    pipe.sismember(keys.symbols, symbol)
    for interval in intervals:
        pipe.exists(keys.latest(symbol, interval))
    return any(await pipe.execute())


async def read_stats(redis: aioredis.Redis, keys: CacheKeys, name: str) -> dict[str, Any] | None:
    """The figures a process reported (JSON values; text where a value is not JSON); None when it reported none."""
    raw = await redis.hgetall(keys.stats(name))
    if not raw:
        return None
    out: dict[str, Any] = {}
    for k, v in raw.items():
        try:
            out[k.decode()] = _stats_value.decode(v)
        except msgspec.DecodeError:
            out[k.decode()] = v.decode("utf-8", "replace")
    return out

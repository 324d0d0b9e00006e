"""Trade sources: the simulator (live) and file replays, behind one small protocol and one registry.

Sources only parse or generate: no Redis, no SQL. Each yields validated
``TradeBatch`` objects; bad input is counted in ``rejects`` by reason.
A source is one module with ``open_spec(arg, options)`` plus one line in
:data:`SOURCES`; it is imported only when a spec names it.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from backend.models import Rejects, TradeBatch
from backend.sources.formats.files import DEFAULT_LIMITS, ReadLimits


class Source(Protocol):
    """What the ingest loop consumes.

    ``batches`` yields validated batches until the source is exhausted or
    ``stop`` is set. A live source (trades stamped with the wall clock) yields
    an empty batch at least every 50 ms when idle, so the caller can run its
    timers (coalesced emits, wall-clock closes).

    A live exchange (:mod:`backend.sources.exchange`) also has, and the ingest
    uses when present: ``take_finals()`` (the exchange's own candles to apply
    before the next batch), ``resume(last_trades)`` (start after restored
    candles) and ``stats()`` (its feed state, merged into the ingest's stats).
    """

    live: bool
    rejects: Rejects

    def batches(self, stop: threading.Event) -> Iterator[TradeBatch]: ...


@dataclass(frozen=True)
class ResumePoint:
    """Where a symbol stood when the previous ingest stopped: its last trade counted and its price."""

    ts_ms: int
    trade_id: int
    price: float


@runtime_checkable
class Resumable(Protocol):
    """A source that makes its own trades (the simulator) and can go on from where a previous run stood."""

    symbols: list[str]

    def resume(self, points: Mapping[str, ResumePoint], now_ms: int) -> set[str]:
        """Continue from ``points`` (before ``batches``); returns the symbols continued without a gap,
        whose open candles the ingest may restore (for the others only ``seq`` carries over)."""
        ...


@dataclass(frozen=True)
class SourceOptions:
    """The settings a source may use; each source reads the ones it understands."""

    symbols: Sequence[str] | None = None
    speed: float = 1.0
    seed: int | None = None
    fmt: str | None = None
    history_s: float = 0.0
    limits: ReadLimits = DEFAULT_LIMITS
    rate: float = 200.0  # the simulator's trades per second
    backfill_s: float = 86_400.0
    silence_s: float = 30.0
    exchange_urls: Mapping[str, str] | None = None


@dataclass(frozen=True)
class SourceKind:
    """A registered source: how a spec names it (``replay:PATH`` takes an argument) and its module."""

    usage: str
    module: str

    @property
    def name(self) -> str:
        return self.usage.partition(":")[0]


SOURCES: tuple[SourceKind, ...] = (
    SourceKind("simulator", "backend.sources.simulator"),
    SourceKind("replay:PATH", "backend.sources.replay"),
    SourceKind("exchange:ID", "backend.sources.exchange"),
)
SPEC_HELP = "use " + " or ".join(f"'{kind.usage}'" for kind in SOURCES)


def source_help() -> str:
    """The specs ``--source`` accepts, for its help: ``simulator | replay:PATH``."""
    return " | ".join(kind.usage for kind in SOURCES)


def open_source(
    spec: str,
    *,
    symbols: Sequence[str] | None = None,
    speed: float = 1.0,
    seed: int | None = None,
    fmt: str | None = None,
    history_s: float = 0.0,
    limits: ReadLimits = DEFAULT_LIMITS,
    rate: float = 200.0,
    backfill_s: float = 86_400.0,
    silence_s: float = 30.0,
    exchange_urls: Mapping[str, str] | None = None,
) -> Source:
    """The source named by ``spec``: ``simulator``, ``replay:PATH`` or ``exchange:ID``.

    ``symbols`` are the simulator's symbols (default: a few majors), and for a
    replay the symbols to keep (default: every symbol in the file). ``speed`` paces a replay
    (1 = recorded timing, 0 = as fast as possible), ``seed`` makes the simulator
    reproducible, ``fmt`` names a replay file's format (default: detected),
    ``history_s`` makes the simulator start with that much recent past, ``rate`` is its trades per second,
    ``limits`` bound how far a replay's compressed file may expand.
    An exchange backfills ``backfill_s`` of its 1m candles on first start, counts
    as disconnected after ``silence_s`` without a message, and ``exchange_urls``
    points ccxt elsewhere (see :func:`backend.sources.ccxt_exchange.make_exchange`).
    A bad spec raises ValueError, a missing replay file FileNotFoundError.
    """
    name, _, arg = spec.strip().partition(":")
    kind = next((k for k in SOURCES if k.name == name), None)
    if kind is None or (arg and ":" not in kind.usage):
        raise ValueError(f"unknown source {spec!r}: {SPEC_HELP}")
    options = SourceOptions(
        symbols=symbols,
        speed=speed,
        seed=seed,
        fmt=fmt,
        history_s=history_s,
        rate=rate,
        limits=limits,
        backfill_s=backfill_s,
        silence_s=silence_s,
        exchange_urls=exchange_urls,
    )
    return importlib.import_module(kind.module).open_spec(arg, options)

"""Trade sources: the simulator (live) and file replays, behind one small protocol.

Sources only parse or generate: no Redis, no SQL. Each yields validated
``TradeBatch`` objects; bad input is counted in ``rejects`` by reason.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Protocol

from backend.config import DEFAULT_SYMBOLS
from backend.models import Rejects, TradeBatch

SPEC_HELP = "use 'simulator' or 'replay:PATH'"


class Source(Protocol):
    """What the ingest loop consumes.

    ``batches`` yields validated batches until the source is exhausted or
    ``stop`` is set. A live source (trades stamped with the wall clock) yields
    an empty batch at least every 50 ms when idle, so the caller can run its
    timers (coalesced emits, wall-clock closes).
    """

    live: bool
    rejects: Rejects

    def batches(self, stop: threading.Event) -> Iterator[TradeBatch]: ...


def open_source(
    spec: str,
    *,
    symbols: Sequence[str] | None = None,
    speed: float = 1.0,
    seed: int | None = None,
    fmt: str | None = None,
    history_s: float = 0.0,
) -> Source:
    """The source named by ``spec``: ``simulator`` or ``replay:PATH``.

    ``symbols`` are the simulator's symbols (default: a few majors), and for a
    replay the symbols to keep (default: every symbol in the file). ``speed`` paces a replay
    (1 = recorded timing, 0 = as fast as possible), ``seed`` makes the simulator
    reproducible, ``fmt`` names a replay file's format (default: detected),
    ``history_s`` makes the simulator start with that much recent past.
    A bad spec raises ValueError, a missing replay file FileNotFoundError.
    """
    kind, _, arg = spec.strip().partition(":")
    if kind == "simulator" and not arg:
        from backend.sources.simulator import Simulator

        return Simulator(symbols or DEFAULT_SYMBOLS, seed=seed, history_s=history_s)
    if kind == "replay":
        if not arg.strip():
            raise ValueError(f"replay needs a file: {SPEC_HELP}")
        from backend.sources.replay import ReplaySource

        return ReplaySource(arg.strip(), speed=speed, fmt=fmt, symbols=symbols)
    raise ValueError(f"unknown source {spec!r}: {SPEC_HELP}")

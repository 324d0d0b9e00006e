"""Renders shared by every session of the process: built once per update, drawn by many.

A page's rerun asks a cache for the current render (a figure already encoded
to the bytes the browser gets, or a tile's HTML); the first session that
needs a newer one builds it (at most every ``min_age_s`` per key, so the
build rate follows the update rate, never the session count), everybody
else gets the same object. Nothing here does I/O.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rendered:
    """A shared render and what it was built from."""

    value: Any
    version: int
    built_at: float
    synced: bool
    meta: dict[str, Any]


class RenderCache:
    """Per-key renders, rebuilt when the source version moved and the render is older than ``min_age_s``."""

    def __init__(self, min_age_s: float = 0.2, max_entries: int = 256) -> None:
        self.min_age_s = min_age_s
        self.max_entries = max_entries
        self._entries: OrderedDict[Any, Rendered] = OrderedDict()
        self._locks: dict[Any, threading.Lock] = {}
        self._guard = threading.Lock()
        self.builds = 0
        self.hits = 0

    def get(
        self, key: Any, version: int, build: Callable[[], tuple[Any, dict[str, Any]]], *, synced: bool = True
    ) -> Rendered:
        entry = self._fresh(key, version, synced)
        if entry is not None:
            return entry
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # one builder per key; the others wait and take its result
            entry = self._fresh(key, version, synced)
            if entry is not None:
                return entry
            value, meta = build()
            entry = Rendered(value, version, time.monotonic(), synced, meta)
            with self._guard:
                self._entries[key] = entry
                self._entries.move_to_end(key)
                self.builds += 1
                while len(self._entries) > self.max_entries:
                    old, _ = self._entries.popitem(last=False)
                    self._locks.pop(old, None)
            return entry

    def _fresh(self, key: Any, version: int, synced: bool) -> Rendered | None:
        with self._guard:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if (
                entry.version == version
                or time.monotonic() - entry.built_at < self.min_age_s
                or (not synced and entry.synced)  # keep the last complete picture while a resync runs
            ):
                self.hits += 1
                return entry
            return None

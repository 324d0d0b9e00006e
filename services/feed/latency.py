"""Feed latency (relay publish → this process) over a sliding window, as p50 / p99."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class Latency:
    """Recent latency samples (at, ms); the summary is cached briefly because every page rerun asks."""

    samples: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=4096))
    _cached: tuple[float, dict[str, float | None]] | None = None

    def add(self, at: float, ms: float) -> None:
        self.samples.append((at, ms))

    def summary(self, window_s: float = 10.0, max_age_s: float = 0.5) -> dict[str, float | None]:
        """p50 / p99 over the last ``window_s``; recomputed at most every ``max_age_s`` (pages ask every rerun)."""
        now = time.time()
        if self._cached is not None and now - self._cached[0] < max_age_s:
            return self._cached[1]
        self._cached = (now, self._summary(now - window_s))
        return self._cached[1]

    def _summary(self, cutoff: float) -> dict[str, float | None]:
        vals = sorted(ms for at, ms in self.samples if at >= cutoff)
        if not vals:
            return {"p50": None, "p99": None, "n": 0}
        return {
            "p50": vals[len(vals) // 2],
            "p99": vals[min(len(vals) - 1, int(len(vals) * 0.99))],
            "n": float(len(vals)),
        }

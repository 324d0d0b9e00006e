"""How long to wait before trying a connection again: exponential backoff with full jitter.

Used by every reconnect loop: the dashboard's relay listener and the live exchange feeds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    """Delays that double from ``initial`` up to ``maximum``, each drawn at random from its upper half."""

    initial: float = 0.5
    maximum: float = 10.0
    attempt: int = 0

    def next_delay(self) -> float:
        """Exponential backoff with full jitter (never below a tenth of a second)."""
        cap = min(self.maximum, self.initial * (2**self.attempt))
        self.attempt += 1
        return max(0.1, random.uniform(cap / 2, cap))

    def reset(self) -> None:
        self.attempt = 0

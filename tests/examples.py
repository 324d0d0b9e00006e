"""How many examples a property test tries: as written, or a quarter of that under mutation testing.

``make mutate`` runs a module's tests once per mutant (thousands of times), and the property tests are most of
that time; a quarter still kills what they kill (tools/mutate.py sets ``CANDLES_MUTATION=1``).
"""

from __future__ import annotations

import os


def examples(n: int) -> int:
    return max(10, n // 4) if os.environ.get("CANDLES_MUTATION") == "1" else n

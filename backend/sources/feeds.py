"""``python -m backend feeds``: which exchanges ``exchange:<id>`` can use, and one exchange's symbols."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping

from backend.models import Rejects


def feeds_command(exchange_id: str | None, urls: Mapping[str, str] | None = None) -> int:
    """Print the usable exchanges (no network), or with ``exchange_id`` its symbols (loads its markets at ``urls``)."""
    from backend.sources.ccxt_exchange import make_exchange, usable_exchanges
    from backend.sources.ccxt_trades import symbol_table

    if exchange_id is None:
        names = usable_exchanges()
        print(f"{len(names)} exchanges stream trades and serve 1m candles through ccxt (use exchange:<id>):")
        print(", ".join(names))
        print("their symbols: python -m backend feeds --exchange <id>")
        return 0
    try:
        ex = make_exchange(exchange_id.strip().lower(), Rejects(), urls)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def load() -> dict[str, str]:
        try:
            await ex.load_markets()
            return symbol_table(ex.markets)
        finally:
            await ex.close()

    try:
        table = asyncio.run(load())
    except Exception as exc:  # network or exchange error: one line, not a traceback
        print(f"error: could not load {exchange_id}'s markets: {str(exc)[:200]}", file=sys.stderr)
        return 1
    for ours, unified in sorted(table.items()):
        print(f"{ours}\t{unified}")
    print(f"{len(table)} symbols on {exchange_id}", file=sys.stderr)
    return 0

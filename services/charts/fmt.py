"""Number and symbol formatting the way an exchange shows them (pure functions)."""

from __future__ import annotations

import math

QUOTES: tuple[str, ...] = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USD", "EUR", "TRY", "BTC", "ETH", "BNB")


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTCUSDT`` → ``("BTC", "USDT")``; a symbol with no known quote stays whole."""
    for quote in QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol, ""


def pair_label(symbol: str) -> str:
    base, quote = split_symbol(symbol)
    return f"{base}/{quote}" if quote else base


def price_decimals(price: float) -> int:
    """Decimals for a price of this magnitude: 97,012.50 · 245.67 · 1.4321 · 0.41235 · 0.00001234."""
    p = abs(price)
    if not math.isfinite(p) or p >= 100:
        return 2
    if p >= 1:
        return 4
    if p >= 0.01:
        return 5
    if p == 0:
        return 2
    # four significant digits for tiny prices
    return min(12, -math.floor(math.log10(p)) + 3)


def fmt_price(price: float | None, decimals: int | None = None) -> str:
    if price is None or not math.isfinite(price):
        return "—"
    d = price_decimals(price) if decimals is None else decimals
    return f"{price:,.{d}f}"


def plotly_price_format(price: float) -> str:
    """A d3 format for axis ticks and hover labels matching :func:`fmt_price`."""
    return f",.{price_decimals(price)}f"


def fmt_compact(value: float | None, decimals: int = 2) -> str:
    """1234 → 1.23K, 5.6e6 → 5.60M: volumes and counts in a tile."""
    if value is None or not math.isfinite(value):
        return "—"
    v = abs(value)
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if v >= limit:
            return f"{value / limit:.{decimals}f}{suffix}"
    return f"{value:.{decimals}f}" if v and v < 100 and value != int(value) else f"{value:,.0f}"


def fmt_pct(value: float | None, decimals: int = 2) -> str:
    """+1.23% · -0.45% · +0.00% (a change that rounds to zero is never "-0.00%")."""
    if value is None or not math.isfinite(value):
        return "—"
    if round(value, decimals) == 0:
        value = 0.0
    return f"{value:+.{decimals}f}%"


def fmt_ms(ms: float | None) -> str:
    """Latency or age: 7 ms, 480 ms, 1.2 s, 12 min, 5.0 h, 1957 d (a replayed feed's trades are years old)."""
    if ms is None or not math.isfinite(ms):
        return "—"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 90_000:
        return f"{ms / 1000:.1f} s"
    if ms < 5_400_000:
        return f"{ms / 60_000:.0f} min"
    if ms < 172_800_000:
        return f"{ms / 3_600_000:.1f} h"
    return f"{ms / 86_400_000:.0f} d"


def fmt_int(value: float | int | None) -> str:
    if value is None:
        return "—"
    return f"{int(value):,}"


def fmt_rate(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:,.0f}/s" if value >= 100 else f"{value:,.1f}/s"

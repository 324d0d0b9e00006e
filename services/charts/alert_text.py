"""Alert rules and fired alerts in words: the condition, the frequency, the state badge, the deliveries.

Pure formatting (rule in, text or HTML out), shared by the rule list, the history and the preview's caption.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from zoneinfo import ZoneInfo

from backend.alerts.series import INDICATOR_WATCHES
from backend.models import AlertRule, Delivery
from services.charts.fmt import fmt_price

STATES: dict[str, tuple[str, str]] = {
    # state → (what the badge says, its CSS class in services/ui/theme.py)
    "armed": ("Armed", "cs-badge-armed"),
    "fired": ("Fired", "cs-badge-fired"),
    "expired": ("Expired", "cs-badge-muted"),
    "disabled": ("Disabled", "cs-badge-muted"),
}
_LEVEL_VERBS = {
    "price_above": "is above",
    "price_below": "is below",
    "cross": "crosses",
    "cross_up": "crosses above",
    "cross_down": "crosses below",
}
_DELIVERY_ICONS = {"delivered": "✓", "failed": "✗", "pending": "…"}


def watch_label(watch: str) -> str:
    """``close`` → ``close``, ``ema50`` → ``EMA 50``, ``bb20_upper`` → ``BB 20 upper``."""
    if watch not in INDICATOR_WATCHES:
        return watch
    key, column = INDICATOR_WATCHES[watch]
    return f"BB 20 {column}" if key == "bb20" else column


def fmt_level(x: float) -> str:
    """A price level the way the charts show prices; whole numbers without decimals (97,000)."""
    return f"{x:,.0f}" if float(x).is_integer() and abs(x) >= 100 else fmt_price(x)


def condition_text(rule: AlertRule) -> str:
    """The rule's condition in words: ``close crosses above 97,000``, ``EMA 20 crosses EMA 50``."""
    what, t = watch_label(rule.watch), rule.threshold
    if rule.kind in _LEVEL_VERBS:
        level = watch_label(t) if isinstance(t, str) else fmt_level(float(t or 0))
        return f"{what} {_LEVEL_VERBS[rule.kind]} {level}"
    if rule.kind in {"channel_enter", "channel_exit"} and isinstance(t, list) and len(t) == 2:
        lo, hi = sorted(t)
        verb = "enters" if rule.kind == "channel_enter" else "leaves"
        return f"{what} {verb} {fmt_level(lo)} – {fmt_level(hi)}"
    if rule.kind == "pct_move":
        return f"{what} moves {float(t or 0):g}% over {rule.lookback} candles"
    if rule.kind == "volume_spike":
        return f"volume over {rule.factor or 0:g}× its {rule.lookback}-candle mean"
    if rule.kind == "feed_silent":
        return f"no trade for {float(t or 0):g} s"
    return f"{rule.kind} {t}"


def frequency_text(rule: AlertRule) -> str:
    if rule.frequency == "every":
        return f"every {fmt_duration(rule.cooldown_s)} at most" if rule.cooldown_s else "every update"
    return {"once": "once", "per_candle": "once per candle", "per_close": "on candle close"}[rule.frequency]


def fmt_duration(seconds: float) -> str:
    """90 → ``1.5 min``, 3600 → ``1 h``, 45 → ``45 s``."""
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def state_badge(state: str) -> str:
    """The rule's state as a coloured pill (HTML)."""
    label, css = STATES.get(state, (state.title(), "cs-badge-muted"))
    return f'<span class="cs-badge {css}" data-testid="rule-state">{escape(label)}</span>'


def fmt_time(ms: int | None, tz: str = "UTC") -> str:
    """Epoch ms as ``2024-11-27 12:03:04`` in ``tz``; ``—`` for none."""
    if ms is None:
        return "—"
    zone = UTC if tz in {"", "UTC"} else ZoneInfo(tz)
    return datetime.fromtimestamp(ms / 1000, zone).strftime("%Y-%m-%d %H:%M:%S")


def fmt_ago(ms: int | None, now_ms: int | None = None) -> str:
    """How long ago, coarsely: ``12 s ago``, ``5 min ago``, ``3 h ago``, ``2 d ago``, ``never``."""
    if ms is None:
        return "never"
    now = time.time() * 1000 if now_ms is None else now_ms
    seconds = max(0.0, (now - ms) / 1000)
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def deliveries_text(deliveries: Sequence[Delivery]) -> str:
    """Each target's delivery in one line: ``✓ https://hooks…/*** · ✗ tgram://*** (timeout)``."""
    if not deliveries:
        return "no targets"
    parts = []
    for d in deliveries:
        why = f" ({d.last_error})" if d.status == "failed" and d.last_error else ""
        tries = f" ×{d.attempts}" if d.attempts > 1 else ""
        parts.append(f"{_DELIVERY_ICONS.get(d.status, '?')} {d.target}{tries}{why}")
    return " · ".join(parts)

"""Alerts: a form for a new rule (only the fields its kind needs), its preview, the rules and what fired.

The form is checked here before anything is sent, and the relay's 422 is shown next to the field it
names. "Preview" asks the relay where the rule would have fired over the stream's cached candles and marks
those candles on a small chart. The rule list and the history live in the page's live fragment: they come
from cached REST answers that are fetched again when the listener sees a new alert (see
:mod:`services.ui.alert_data`), so a fired alert shows up here without a reload.
"""

from __future__ import annotations

import datetime as dt
import math
from html import escape
from typing import Any

import msgspec
import streamlit as st

from backend.alerts.series import MAX_LOOKBACK, WATCHES
from backend.models import AlertRule, Candle, now_ms
from services.alert_draft import FREQUENCIES, KINDS, TARGET_HINT, Draft, draft_body, kind_inputs
from services.charts.alert_text import watch_label
from services.charts.alerts import preview_figure_spec, preview_summary
from services.charts.fmt import fmt_price, pair_label, price_decimals
from services.charts.frame import candles_frame
from services.charts.marks import marks_of
from services.client import Preview, RelayError
from services.feed.status import FeedStatus
from services.ui import alert_data
from services.ui.alert_views import history, rule_list
from services.ui.page import LivePage, live_page
from services.ui.plot import CANDLES_CONFIG, encode_plot, live_plot

ERRORS = "alerts:errors"  # field → message, from the last check or the relay's 422
PREVIEW = "alerts:preview"  # (body, preview, candles) of the last preview
PREVIEW_CANDLES = 1000


def main() -> None:
    page = live_page("alerts")
    st.markdown("## Alerts")
    st.caption(
        "Get told when a price, an indicator or the feed does something: on this dashboard, by webhook, "
        "or through Apprise (Telegram, Discord, e-mail, …). Preview a rule on recent candles before saving it."
    )
    left, right = st.columns([5, 7], gap="large")
    with left:
        with st.container(border=True, key="new-alert"):
            body = new_alert_form(page)
        show_preview(body)
    with right:

        def draw(status: FeedStatus) -> None:
            if status.live:
                seen = alert_data.alerts_seen(page.rt.feed)
                rule_list(seen)
                history(seen, page.symbols())

        page.live(draw)


def new_alert_form(page: LivePage) -> dict[str, Any] | None:
    """The form; returns the checked rule body when it has no problems (for the preview to compare)."""
    st.markdown("#### New alert")
    symbols, intervals = page.symbols(), page.intervals()
    errors: dict[str, str] = st.session_state.setdefault(ERRORS, {})
    c1, c2 = st.columns([1, 1])
    symbol = c1.selectbox("Symbol", symbols, format_func=pair_label, key="na_symbol")
    interval = c2.selectbox("Interval", intervals, index=_index(intervals, "1m"), key="na_interval")
    stream = (symbol, interval)
    page.want({stream})
    page.rt.feed.wait_loaded([stream], timeout=3.0)
    last: Candle | None = page.rt.feed.read(stream, lambda b: b.last)
    price = last.close if last is not None else None
    kind = st.selectbox("Condition", list(KINDS), format_func=KINDS.__getitem__, key="na_kind")
    inputs = kind_inputs(kind)
    draft = Draft(symbol, interval, kind)
    if "watch" in inputs:
        draft.watch = st.selectbox(
            "Watch", WATCHES, format_func=watch_label, key="na_watch", help="the close, or an indicator of the chart"
        )
    level_inputs(draft, inputs, price)
    _field_error(errors, "threshold", "lookback", "factor", "watch")
    f1, f2 = st.columns([1, 1])
    draft.frequency = f1.selectbox("Fires", list(FREQUENCIES), format_func=FREQUENCIES.__getitem__, key="na_freq")
    if draft.frequency == "every":
        draft.cooldown_s = int(f2.number_input("Cooldown (s)", 0, 7 * 86_400, 60, step=30, key="na_cooldown"))
    elif f2.toggle("Expires", key="na_expires", help="after this time (UTC) the rule stops"):
        draft.expires_at = _expiry()
    _field_error(errors, "cooldown_s", "expires_at")
    draft.targets = st.text_area("Notify", key="na_targets", height=68, placeholder=TARGET_HINT,
                                 help="Leave empty for dashboard toasts only. " + TARGET_HINT)  # fmt: skip
    _field_error(errors, "targets")
    draft.note = st.text_input("Note", key="na_note", max_chars=500, placeholder="optional")
    _field_error(errors, "symbol", "interval", "note", "")
    body, problems = draft_body(draft, now_ms())
    b1, b2, _ = st.columns([1, 1, 1.2])
    if b1.button("Preview", icon=":material/query_stats:", width="stretch", key="na_preview"):
        st.session_state[ERRORS] = problems
        if not problems:
            run_preview(body)
        st.rerun()
    if b2.button("Create", icon=":material/add_alert:", type="primary", width="stretch", key="na_create"):
        st.session_state[ERRORS] = problems
        if not problems:
            create(body)
        st.rerun()
    return None if problems else body


def level_inputs(draft: Draft, inputs: frozenset[str], price: float | None) -> None:
    """The inputs of the chosen kind (keyed by symbol where a price is the default, so it follows the symbol)."""
    sym = draft.symbol
    step = _step(price)
    fmt = f"%.{price_decimals(price or 1.0)}f"
    if "level" in inputs:
        a, b = st.columns([1, 1])
        if draft.kind in {"cross", "cross_up", "cross_down"}:
            choices = [None, *(w for w in WATCHES if w != "close")]
            draft.level_indicator = b.selectbox(
                "…or cross an indicator", choices, format_func=lambda w: "—" if w is None else watch_label(w),
                key="na_level_ind",
            )  # fmt: skip
        elif price:
            b.markdown(f"<div class='cs-hint'>last price <b>{fmt_price(price)}</b></div>", unsafe_allow_html=True)
        default = round(price, price_decimals(price)) if price else None
        draft.level = a.number_input(
            "Level", min_value=0.0, value=default, step=step, format=fmt, key=f"na_level:{sym}",
            help=f"last price {fmt_price(price)}" if price else None, disabled=bool(draft.level_indicator),
        )  # fmt: skip
    if "channel" in inputs:
        a, b = st.columns([1, 1])
        d = price_decimals(price or 1.0)
        lo, hi = (round(price * 0.99, d), round(price * 1.01, d)) if price else (None, None)
        draft.low = a.number_input("Low", min_value=0.0, value=lo, step=step, format=fmt, key=f"na_low:{sym}")
        draft.high = b.number_input("High", min_value=0.0, value=hi, step=step, format=fmt, key=f"na_high:{sym}")
    if "pct" in inputs:
        a, b = st.columns([1, 1])
        draft.pct = a.number_input("Move (%)", min_value=0.0, value=2.0, step=0.5, key="na_pct")
        draft.lookback = int(b.number_input("Over candles", 1, MAX_LOOKBACK, 20, key="na_lookback"))
    if "factor" in inputs:
        a, b = st.columns([1, 1])
        draft.factor = a.number_input("Volume over mean ×", min_value=0.0, value=3.0, step=0.5, key="na_factor")
        draft.lookback = int(b.number_input("Mean of candles", 1, MAX_LOOKBACK, 20, key="na_vlookback"))
    if "seconds" in inputs:
        draft.seconds = st.number_input("Seconds without a trade", 1, 86_400, 30, key="na_seconds")


def run_preview(body: dict[str, Any]) -> None:
    """Ask the relay where the rule would have fired, and fetch the candles to draw it on."""
    client = alert_data.client()
    try:
        preview = client.preview_rule(body)
        candles = client.candles(body["symbol"], body["interval"], limit=max(1, min(preview.candles, PREVIEW_CANDLES)))
    except RelayError as exc:
        _relay_error(exc)
        return
    st.session_state[PREVIEW] = (body, preview, [c for c in candles if c.closed])


def create(body: dict[str, Any]) -> None:
    try:
        rule = alert_data.client().create_rule(body)
    except RelayError as exc:
        _relay_error(exc)
        return
    alert_data.forget()
    st.session_state.pop(PREVIEW, None)
    st.toast(f"Alert #{rule.id} created: {rule.symbol} {rule.interval}", icon=":material/add_alert:")


def show_preview(body: dict[str, Any] | None) -> None:
    """The last preview's chart and summary (marked stale when the form has changed since)."""
    shown: tuple[dict[str, Any], Preview, list[Candle]] | None = st.session_state.get(PREVIEW)
    if shown is None:
        st.caption("**Preview** draws where the rule would have fired over the stream's recent candles.")
        return
    was, preview, candles = shown
    rule = msgspec.convert(was, AlertRule)
    fig = preview_figure_spec(candles_frame(candles), marks_of(preview.fires), rule)
    stale = " · <i>the form has changed since: preview again</i>" if body != was else ""
    st.markdown(
        f"<div data-testid='preview-summary'>{preview_summary(len(preview.fires), preview.candles, rule.interval)}"
        f"{stale}</div>",
        unsafe_allow_html=True,
    )
    live_plot(encode_plot(fig, CANDLES_CONFIG), key="alert-preview")


def _relay_error(exc: RelayError) -> None:
    """A 422 goes next to the field it names; anything else under the form."""
    field = exc.field
    message = exc.detail.partition(": ")[2] if field else str(exc)
    st.session_state[ERRORS] = {field or "": message}


def _field_error(errors: dict[str, str], *fields: str) -> None:
    for name in fields:
        if name in errors:
            label = f"**{name}**: " if name else ""
            st.markdown(f"<div class='cs-field-error'>{label}{escape(errors[name])}</div>", unsafe_allow_html=True)


def _expiry() -> int:
    a, b = st.columns([1, 1])
    tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    day = a.date_input("Expires on (UTC)", tomorrow.date(), key="na_exp_day")
    at = b.time_input("at", dt.time(tomorrow.hour, 0), key="na_exp_time")
    return int(dt.datetime.combine(day, at, tzinfo=dt.UTC).timestamp() * 1000)


def _step(price: float | None) -> float:
    if not price:
        return 1.0
    return float(10 ** max(-8, round(math.log10(price)) - 3))


def _index(options: list[str], value: str) -> int:
    return options.index(value) if value in options else 0


main()

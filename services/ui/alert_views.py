"""The alerts page's live part: the rule list with its actions, and the history of fired alerts.

Both draw from :mod:`services.ui.alert_data`'s cached answers, inside the page's live fragment; an action
(enable, disable, delete after a confirmation, load older alerts) calls the relay and redraws the fragment.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

import streamlit as st

from backend.models import AlertRecord, AlertRule
from services.charts.alert_text import (
    condition_text,
    deliveries_text,
    fmt_ago,
    fmt_time,
    frequency_text,
    state_badge,
)
from services.charts.fmt import fmt_price, pair_label
from services.client import RelayError
from services.ui import alert_data
from services.ui.alert_data import Seen

CONFIRM = "alerts:confirm-delete"  # the rule id waiting for a confirmation
CURSORS = "alerts:cursors"  # the older pages of history loaded, per filter
PAGE = 50


def rule_list(seen: Seen) -> None:
    """Every rule as a row: pair, condition, frequency, state badge, fires, and its actions."""
    try:
        rules = alert_data.rules(seen)
    except RelayError as exc:
        st.warning(f"The alert rules could not be read: {exc}")
        return
    armed = sum(r.state == "armed" and r.enabled for r in rules)
    st.markdown(f"#### Rules <span class='cs-muted cs-small'>{armed} armed of {len(rules)}</span>",
                unsafe_allow_html=True)  # fmt: skip
    if not rules:
        st.caption("No alert rules yet: make one with the form.")
    for rule in reversed(rules):  # newest first
        _rule_row(rule)


def _rule_row(rule: AlertRule) -> None:
    with st.container(border=True, key=f"rule-{rule.id}"):
        info, fires, actions = st.columns([6.2, 2.2, 1.6], vertical_alignment="center")
        note = f" · <i>{escape(rule.note)}</i>" if rule.note else ""
        targets = f" · {len(rule.targets)} target{'s' if len(rule.targets) != 1 else ''}" if rule.targets else ""
        info.markdown(
            f"<div class='cs-rule' data-testid='alert-rule' data-rule-id='{rule.id}'>"
            f"<div><b>{pair_label(rule.symbol)}</b> <span class='cs-muted'>{rule.interval} · #{rule.id}</span> "
            f"{state_badge(rule.state)}</div>"
            f"<div class='cs-cond'>{escape(condition_text(rule))}</div>"
            f"<div class='cs-muted cs-small'>{escape(frequency_text(rule))}{targets}{note}</div></div>",
            unsafe_allow_html=True,
        )
        count = f"{rule.fire_count:,} fire{'s' if rule.fire_count != 1 else ''}"
        fires.markdown(
            f"<div class='cs-fires'><b>{count}</b><br><span class='cs-muted cs-small'>"
            f"last {fmt_ago(rule.last_fired_at)}</span></div>",
            unsafe_allow_html=True,
        )
        if st.session_state.get(CONFIRM) == rule.id:
            yes, no = actions.columns(2)
            if yes.button("", icon=":material/check:", key=f"del-yes-{rule.id}", help="Delete this rule for good",
                          type="primary"):  # fmt: skip
                _act(lambda: alert_data.client().delete_rule(rule.id or 0))
            if no.button("", icon=":material/close:", key=f"del-no-{rule.id}", help="Keep it"):
                st.session_state.pop(CONFIRM, None)
                st.rerun(scope="fragment")
            return
        toggle, delete = actions.columns(2)
        pause = rule.enabled and rule.state != "disabled"
        if toggle.button("", icon=":material/pause:" if pause else ":material/play_arrow:", key=f"en-{rule.id}",
                         help="Disable" if pause else "Enable (re-arms it)"):  # fmt: skip
            _act(lambda: alert_data.client().update_rule(rule.id or 0, {"enabled": not pause}))
        if delete.button("", icon=":material/delete:", key=f"del-{rule.id}", help="Delete…"):
            st.session_state[CONFIRM] = rule.id
            st.rerun(scope="fragment")


def _act(call: Callable[[], object]) -> None:
    """Run an action on the relay, then redraw with fresh lists (or say why it failed)."""
    try:
        call()
    except RelayError as exc:
        st.toast(f"That did not work: {exc}", icon=":material/error:")
        return
    st.session_state.pop(CONFIRM, None)
    alert_data.forget()
    st.rerun(scope="fragment")


def history(seen: Seen, symbols: list[str]) -> None:
    """Fired alerts, newest first, filtered by symbol or rule, with "Load more" through the cursor."""
    st.markdown("#### History")
    try:
        rules = alert_data.rules(seen)
    except RelayError:
        rules = []
    a, b, _ = st.columns([1, 1.4, 1.2])
    symbol = a.selectbox("Symbol", [None, *symbols], format_func=_symbol_label, key="hist_symbol")
    labels = {r.id: f"#{r.id} {r.symbol} {condition_text(r)}" for r in rules}
    rule_id = b.selectbox("Rule", [None, *labels], format_func=lambda i: "All rules" if i is None else labels[i],
                          key="hist_rule")  # fmt: skip
    cursors: list[str] = st.session_state.setdefault(CURSORS, {}).setdefault((symbol, rule_id), [])
    try:
        pages = [alert_data.events(seen, rule_id=rule_id, symbol=symbol, cursor=None, limit=PAGE)]
        pages += [alert_data.events((0, 0), rule_id=rule_id, symbol=symbol, cursor=c, limit=PAGE) for c in cursors]
    except RelayError as exc:
        st.warning(f"The history could not be read: {exc}")
        return
    items = [e for p in pages for e in p.items]
    if not items:
        st.caption("Nothing has fired yet." if symbol is None and rule_id is None else "Nothing fired for this filter.")
        return
    st.markdown(_history_table(items), unsafe_allow_html=True)
    last = pages[-1]
    if last.has_more and last.next_cursor and st.button("Load more", icon=":material/expand_more:", key="hist_more"):
        cursors.append(last.next_cursor)
        st.rerun(scope="fragment")


def _symbol_label(symbol: str | None) -> str:
    return "All symbols" if symbol is None else pair_label(symbol)


def _history_table(items: list[AlertRecord]) -> str:
    rows = "".join(
        f"<tr data-testid='alert-event' data-rule-id='{e.rule_id}'><td class='cs-nowrap'>{fmt_time(e.fired_at)}</td>"
        f"<td><b>{pair_label(e.symbol)}</b> <span class='cs-muted'>{e.interval}</span></td>"
        f"<td class='cs-msg'>{escape(e.message)}</td><td class='cs-num'>{fmt_price(e.value)}</td>"
        f"<td class='cs-small cs-deliv'>{escape(deliveries_text(e.deliveries))}</td></tr>"
        for e in items
    )
    return (
        "<table class='cs-table' data-testid='alert-history'><thead><tr><th>Fired (UTC)</th><th>Stream</th>"
        f"<th>Message</th><th class='cs-num'>Value</th><th>Delivery</th></tr></thead><tbody>{rows}</tbody></table>"
    )

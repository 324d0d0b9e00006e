"""The alerts page in headless Chromium: make a rule with the form, preview it, see it fire everywhere.

On the simulator, a ``price_above`` rule just below BTCUSDT's price on 1s fires at the next update: the
toast appears, the history gets its row, and the candles chart gets a marker on that candle. The stack,
app and browser fixtures and the screenshot helper are the dashboard browser tests' own.
"""

from __future__ import annotations

from typing import Any

import pytest

from backend.models import now_ms
from tests.browser.chromium import CHART, shot, wait_chart
from tests.dashboard_fixtures import StreamlitApp
from tests.stack import Server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.integration,
]

FORM = ".st-key-new-alert"


def choose(page: Any, label: str, option: str) -> None:
    """Pick ``option`` in the form's selectbox labelled ``label``."""
    from playwright.sync_api import expect

    box = page.locator(f"{FORM} input[role=combobox][aria-label='{label}']")
    box.click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(box).to_have_value(option, timeout=10_000)


def live_candle(stack: Server, out: dict[str, Any]) -> bool:
    """Whether BTCUSDT's newest 1s candle is from the last few seconds (then it is put in ``out``)."""
    candle = stack.get("/api/v1/candles/BTCUSDT", params={"interval": "1s", "limit": 1}).json()["candles"][-1]
    out.update(candle)
    return candle["open_time"] >= now_ms() - 5_000


def marker_points(page: Any) -> int:
    """How many alert markers the candles chart shows."""
    return page.evaluate(
        f"""() => {{ const g = document.querySelector('{CHART}');
            const t = g && g._fullData ? g._fullData.find(t => t.name === 'Alerts') : null;
            return t ? t.x.length : 0; }}"""
    )


def test_a_rule_made_in_the_form_fires_toasts_and_lands_in_history_and_on_the_chart(
    stack: Server, app: StreamlitApp, page: Any, browser: Any
) -> None:
    # the live price, not the seeded history's: the simulator's walk starts elsewhere
    latest: dict[str, Any] = {}
    stack.wait_until(lambda: live_candle(stack, latest), timeout=60, what="a live BTCUSDT 1s candle")
    level = latest["close"] * 0.995
    page.goto(app.url + "/alerts")
    page.wait_for_selector(f"{FORM} [data-testid=stNumberInput]", timeout=30_000)
    choose(page, "Symbol", "BTC/USDT")
    choose(page, "Interval", "1s")
    level_input = page.locator(f"{FORM} [data-testid=stNumberInput]").filter(has_text="Level").locator("input")
    level_input.fill(f"{level:.2f}")
    level_input.press("Enter")
    page.wait_for_function(
        "(v) => Array.from(document.querySelectorAll('.st-key-new-alert input')).some(i => i.value === v)",
        arg=f"{level:.2f}",
        timeout=10_000,
    )

    page.get_by_role("button", name="Preview").click()
    summary = page.locator("[data-testid=preview-summary]")
    summary.wait_for(timeout=30_000)
    assert "Would have fired" in summary.inner_text()
    page.wait_for_selector(CHART, timeout=20_000)

    page.get_by_role("button", name="Create").click()
    toast = page.locator("[data-testid=stToast]").filter(has_text="BTCUSDT is above")
    toast.first.wait_for(timeout=30_000)
    row = page.locator("[data-testid=alert-event]").filter(has_text="BTCUSDT is above")
    row.first.wait_for(timeout=30_000)
    assert "Fired" in page.locator("[data-testid=alert-rule]").first.inner_text()
    shot(page, "alerts")

    light = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme="light")
    try:
        lp = light.new_page()
        lp.goto(app.url + "/alerts")
        lp.locator("[data-testid=alert-event]").first.wait_for(timeout=30_000)
        shot(lp, "alerts-light")
    finally:
        light.close()

    page.goto(app.url + "/candles?symbol=BTCUSDT&interval=1s")
    wait_chart(page)
    page.wait_for_function(
        f"""() => {{ const g = document.querySelector('{CHART}');
            const t = g && g._fullData ? g._fullData.find(t => t.name === 'Alerts') : null;
            return t && t.x.length > 0; }}""",
        timeout=30_000,
    )
    assert marker_points(page) >= 1
    shot(page, "candles-alert-marker")

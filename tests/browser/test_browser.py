"""What a person sees, in headless Chromium: the real stack, the real app, the real browser.

Screenshots go to ``test-artifacts/`` (and to ``$CANDLES_SCREENSHOTS_DIR`` when set: that is how the
README's ``docs/screenshots`` are made).
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.chromium import CHART, candle_times, shot, wait_chart
from tests.dashboard_fixtures import StreamlitApp
from tests.proxy import TcpProxy
from tests.stack import Server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.integration,
]


def test_overview_prices_change_live_without_a_reload(app: StreamlitApp, page: Any) -> None:
    page.goto(app.url + "/")
    page.wait_for_function(
        "() => { const p = Array.from(document.querySelectorAll('[data-testid=tile-price]'));"
        " return p.length === 6 && p.every(e => e.textContent.trim() !== '—'); }",
        timeout=30_000,
    )
    page.evaluate("() => { window.__sameDocument = true; }")
    prices = page.locator("[data-testid=tile-price]")
    first = prices.all_inner_texts()
    page.wait_for_function(
        "(first) => { const now = Array.from(document.querySelectorAll('[data-testid=tile-price]'))"
        ".map(e => e.innerText); return now.some((t, i) => t !== first[i]); }",
        arg=first,
        timeout=20_000,
    )
    assert page.evaluate("() => window.__sameDocument === true"), "the page reloaded"
    assert "Live" in page.locator("[data-testid=feed-status]").first.inner_text()
    shot(page, "overview")


def test_a_tile_clicks_through_to_its_chart(app: StreamlitApp, page: Any) -> None:
    page.goto(app.url + "/")
    page.locator("a.cs-tile[data-symbol=ETHUSDT]").click()
    page.wait_for_url("**/candles?*symbol=ETHUSDT*", timeout=20_000)
    wait_chart(page)


def test_candles_chart_draws_candlesticks_and_volume(app: StreamlitApp, page: Any) -> None:
    page.goto(app.url + "/candles?symbol=BTCUSDT&interval=1m&ind=ema20,bb20")
    t = wait_chart(page)
    kinds = [x["type"] for x in t]
    assert kinds[:2] == ["candlestick", "bar"] and kinds.count("scatter") == 4
    candle, volume = t[0], t[1]
    assert candle["n"] > 0 and volume["n"] == candle["n"]
    assert (candle["up"], candle["down"]) == ("#26a69a", "#ef5350")
    assert volume["xaxis"] == "x2" and volume["yaxis"] == "y2"
    assert page.evaluate(f"() => document.querySelector('{CHART}')._fullLayout.xaxis2.matches") == "x"
    page.wait_for_timeout(1500)
    shot(page, "candles")


def test_zoom_survives_live_updates(app: StreamlitApp, page: Any) -> None:
    page.goto(app.url + "/candles?symbol=ETHUSDT&interval=1s")
    wait_chart(page)
    page.evaluate(f"() => {{ window.__plot = document.querySelector('{CHART}'); }}")
    box = page.locator(f"{CHART} .nsewdrag").first.bounding_box()
    x, y = box["x"] + box["width"] * 0.7, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - box["width"] * 0.3, y, steps=10)  # pan: drag the chart to the left
    page.mouse.up()
    state = f"""() => {{ const g = document.querySelector('{CHART}');
        return {{ same: g === window.__plot, range: g._fullLayout.xaxis.range,
                  auto: g._fullLayout.xaxis.autorange, seq: g.dataset.seq }}; }}"""
    panned = page.evaluate(state)
    assert panned["auto"] is False
    page.wait_for_function(
        f"(seq) => Number(document.querySelector('{CHART}').dataset.seq) > Number(seq) + 1",
        arg=panned["seq"],
        timeout=20_000,
    )
    after = page.evaluate(state)
    assert after["same"], "the plot was remounted"
    assert after["seq"] != panned["seq"], "the chart was updated"
    assert after["range"] == panned["range"] and after["auto"] is False, "the user's pan was kept"
    shot(page, "candles-panned")


def test_system_page_shows_the_figures(app: StreamlitApp, page: Any) -> None:
    page.goto(app.url + "/system")
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('[data-testid=stMetricLabel]'))"
        ".some(e => e.innerText.includes('Trades/s'))",
        timeout=30_000,
    )
    page.wait_for_selector(CHART, timeout=20_000)
    text = page.locator("body").inner_text()
    for label in ("Trades/s", "Connections", "Listener", "Session queues"):
        assert label in text
    page.wait_for_timeout(1500)
    shot(page, "system")


def test_light_theme(app: StreamlitApp, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme="light")
    page = context.new_page()
    try:
        page.goto(app.url + "/candles?symbol=SOLUSDT&interval=1s&ind=vwap,rsi14")
        wait_chart(page)
        bg = page.evaluate("() => getComputedStyle(document.querySelector('.stApp')).backgroundColor")
        assert bg == "rgb(255, 255, 255)"
        page.wait_for_timeout(1500)
        shot(page, "candles-light")
    finally:
        context.close()


def test_the_page_says_when_the_relay_goes_down_and_recovers_by_itself(
    stack: Server, browser: Any, tmp_path: Path
) -> None:
    proxy = TcpProxy("127.0.0.1", int(stack.url.rsplit(":", 1)[1]))
    streamlit = StreamlitApp(f"http://127.0.0.1:{proxy.port}", log_dir=tmp_path)
    context = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme="dark")
    page = context.new_page()
    try:
        page.goto(streamlit.url + "/candles?symbol=BTCUSDT&interval=1s")  # a deep link as the server's first visit
        wait_chart(page)
        nav = page.locator("[data-testid=stTopNavLink]").all_inner_texts()
        assert [n.split()[-1] for n in nav] == ["Overview", "Candles", "Alerts", "System"], nav
        proxy.cut()
        page.wait_for_function("() => document.body.innerText.includes('is not answering')", timeout=30_000)
        assert "Relay down" in page.locator("[data-testid=feed-status]").first.inner_text()
        assert "Traceback" not in page.locator("body").inner_text()
        page.wait_for_function("() => document.body.innerText.includes('loaded when the relay answers again')")
        assert page.get_by_role("button", name="Load older history").count() == 0  # never offered while down
        shot(page, "relay-down")
        proxy.restore()
        seq = page.evaluate(f"() => document.querySelector('{CHART}').dataset.seq")
        page.wait_for_function("() => !document.body.innerText.includes('is not answering')", timeout=30_000)
        page.wait_for_function(
            f"(seq) => Number(document.querySelector('{CHART}').dataset.seq) > Number(seq)", arg=seq, timeout=30_000
        )
        assert "Live" in page.locator("[data-testid=feed-status]").first.inner_text()
        # the resync leaves no hole and no duplicate: one 1s candle after another across the outage,
        # the same closed candles as a fresh load of the same link shows
        fresh = context.new_page()
        fresh.goto(streamlit.url + "/candles?symbol=BTCUSDT&interval=1s")
        wait_chart(fresh)
        deadline = time.monotonic() + 30
        while True:
            resynced, loaded = candle_times(page), candle_times(fresh)
            if resynced[-1] == loaded[-1]:  # both show the same forming candle
                break
            assert time.monotonic() < deadline, "the two pages never showed the same window"
            page.wait_for_timeout(50)
        assert {b - a for a, b in itertools.pairwise(resynced)} == {1000}, "a hole or a duplicate after the resync"
        assert resynced == loaded
    finally:
        context.close()
        streamlit.stop()
        proxy.cut()

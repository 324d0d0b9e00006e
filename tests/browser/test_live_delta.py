"""The live chart and tiles, sent as patches: after a minute they equal a fresh load; a new view comes whole."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.browser.chromium import CHART, shot, wait_chart
from tests.dashboard_fixtures import StreamlitApp

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]

URL = "/candles?symbol=BTCUSDT&interval=1s&ind=ema20,vwap&bars=100"

# every array of every trace, as plain numbers, with the version (token) the plot holds and what it was sent
SNAPSHOT = f"""() => {{
  const g = document.querySelector('{CHART}');
  if (!g || !g.data) return null;
  const arr = (v) => v == null ? null : Array.from(v, (x) => Number.isNaN(x) ? "NaN" : x);
  return {{
    token: g.dataset.token, fulls: Number(g.dataset.fulls || 0), patches: Number(g.dataset.patches || 0),
    seq: Number(g.dataset.seq), meta: g.layout.meta,
    traces: g.data.map((t) => ({{ type: t.type, name: t.name, x: arr(t.x), y: arr(t.y), open: arr(t.open),
      high: arr(t.high), low: arr(t.low), close: arr(t.close), color: arr(t.marker && t.marker.color) }})),
    shapes: g.layout.shapes, annotations: g.layout.annotations }};
}}"""


TILES = ".cs-cells"
# the tiles as the page shows them, with the version (token) the grid holds and what it was sent
TILES_SNAPSHOT = f"""() => {{
  const r = document.querySelector('{TILES}');
  if (!r || !r.__csHeld) return null;
  const tiles = Array.from(r.querySelectorAll('.cs-tile')).map((t) => {{
    const line = t.querySelector('polyline');
    return {{ symbol: t.dataset.symbol, points: line ? line.getAttribute('points').split(' ') : [],
             tags: Array.from(t.querySelectorAll('*'), (e) => e.tagName).join(' ') }};
  }});
  return {{ token: r.dataset.token, fulls: Number(r.dataset.fulls || 0), patches: Number(r.dataset.patches || 0),
           asks: Number(r.dataset.asks || 0), tiles, cells: r.children.length,
           same_cell: window.__cell === r.children[0] }};
}}"""


LIVE_FOR_S = 60  # how long the live pages take updates before they are compared with a fresh load


@dataclass
class LivePages:
    """The candles page and the overview, opened together, then left to take live updates for a minute."""

    chart: Any
    tiles: Any
    first_chart: dict[str, Any]
    first_tiles: dict[str, Any]
    since: float

    def wait_a_minute(self) -> None:
        self.chart.wait_for_timeout(max(0.0, self.since + LIVE_FOR_S - time.monotonic()) * 1000)


@pytest.fixture(scope="module")
def live(app: StreamlitApp, browser: Any) -> Iterator[LivePages]:
    chart = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme="dark").new_page()
    tiles = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme="dark").new_page()
    chart.goto(app.url + URL)
    tiles.goto(app.url + "/")
    wait_chart(chart)
    tiles.wait_for_function(f"() => {{ const r = document.querySelector('{TILES}'); return r && r.__csHeld; }}")
    # the first runs send the whole figure or grid (the app's run, its fragment's, and again if the page drew only
    # the last of two quick updates and asked for it); after that, only patches
    chart.wait_for_timeout(3000)
    tiles.evaluate(f"() => {{ window.__cell = document.querySelector('{TILES}').children[0]; }}")
    pages = LivePages(chart, tiles, chart.evaluate(SNAPSHOT), tiles.evaluate(TILES_SNAPSHOT), time.monotonic())
    yield pages
    chart.context.close()
    tiles.context.close()


CAPTION_MOVED = """(before) => Array.from(document.querySelectorAll('[data-testid=stCaptionContainer]'))
  .some((e) => e.innerText.startsWith('Shown from') && e.innerText !== before)"""


def test_the_history_row_is_sent_once_and_its_caption_follows_the_window(
    live: LivePages, app: StreamlitApp, browser: Any
) -> None:
    """The "Load older history" row is drawn by the app's run; each refresh sends only its caption.

    First in this file, so the live pages' minute (``live``) runs meanwhile.
    """
    page = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme="dark").new_page()
    frames: list[bytes] = []
    page.on(
        "websocket",
        lambda ws: ws.on("framereceived", lambda p: frames.append(p if isinstance(p, bytes) else p.encode())),
    )
    page.goto(app.url + "/candles?symbol=BTCUSDT&interval=1s&bars=100")
    wait_chart(page)
    page.get_by_role("button", name="Load older history").wait_for(timeout=60_000)  # SQL holds older candles
    seen = len(frames)
    for _ in range(3):  # three moves of the window start, each through a refresh of the live part
        shown = page.locator("[data-testid=stCaptionContainer]", has_text="Shown from").first.inner_text()
        page.wait_for_function(CAPTION_MOVED, arg=shown, timeout=20_000)
    later = frames[seen:]
    assert len(later) >= 3
    assert not any(b"Load older history" in f for f in later), "the button is not sent again by the live refreshes"
    # the chart's code is a file the page loads once: a refresh names it, and carries no code
    assert any(b"cs-plot-" in f for f in later) and not any(b"export default" in f for f in later)
    assert page.get_by_role("button", name="Load older history").count() == 1
    page.context.close()


def test_after_a_minute_of_patches_the_chart_equals_a_fresh_load(
    live: LivePages, app: StreamlitApp, browser: Any
) -> None:
    first = live.first_chart
    assert first["fulls"] >= 1
    live.wait_a_minute()  # the 1s window slid, candles closed and formed through patches alone
    moved = live.chart.evaluate(SNAPSHOT)
    assert moved["patches"] >= first["patches"] + LIVE_FOR_S // 2, "patches came all the while"
    assert moved["fulls"] == first["fulls"], "only patches once the chart is drawn"

    fresh = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme="dark").new_page()
    fresh.goto(app.url + URL)
    wait_chart(fresh)
    # each page shows the shared figure of its own rerun: wait until both show the same window (the same forming
    # candle), then every closed candle and every indicator point on them must be equal, number for number
    deadline = time.monotonic() + 30
    while True:
        a, b = live.chart.evaluate(SNAPSHOT), fresh.evaluate(SNAPSHOT)
        if a["traces"][0]["x"] == b["traces"][0]["x"]:
            break
        assert time.monotonic() < deadline, "the two pages never showed the same window"
        live.chart.wait_for_timeout(50)
    assert a["fulls"] == first["fulls"] and b["patches"] < a["patches"]
    assert len(a["traces"]) == len(b["traces"]) == 4  # candles, volume, EMA 20, VWAP
    assert len(a["traces"][0]["x"]) == 100
    for ta, tb in zip(a["traces"], b["traces"], strict=True):
        closed_a = {k: v[:-1] for k, v in ta.items() if isinstance(v, list)}
        closed_b = {k: v[:-1] for k, v in tb.items() if isinstance(v, list)}
        assert closed_a == closed_b, f"{ta['type']} {ta['name']} differs from a fresh load"
    fresh.context.close()

    # another interval: the new series, whole, at the next draw
    live.chart.locator(".st-key-chart-controls").get_by_text("1m", exact=True).click()
    live.chart.wait_for_function(
        f"() => {{ const g = document.querySelector('{CHART}'); return g.layout.meta.interval === '1m'; }}",
        timeout=20_000,
    )
    after = live.chart.evaluate(SNAPSHOT)
    xs = after["traces"][0]["x"]
    assert after["fulls"] == a["fulls"] + 1
    assert len(xs) > 10 and {round(x1 - x0) for x0, x1 in itertools.pairwise(xs)} == {60_000}
    shot(live.chart, "candles-after-patches")


def test_after_a_minute_the_overview_tiles_updated_in_place_equal_a_fresh_load(
    live: LivePages, app: StreamlitApp, browser: Any
) -> None:
    first = live.first_tiles
    assert first["fulls"] >= 1 and first["cells"] == 6
    live.wait_a_minute()  # prices, pills and sparklines moved through splices alone
    moved = live.tiles.evaluate(TILES_SNAPSHOT)
    assert moved["patches"] >= first["patches"] + LIVE_FOR_S // 2, "splices came all the while"
    assert moved["fulls"] == first["fulls"], "only splices once the tiles are drawn"
    assert moved["same_cell"], "the tiles are updated in place, not drawn again"

    fresh = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme="dark").new_page()
    fresh.goto(app.url + "/")
    fresh.wait_for_function(f"() => {{ const r = document.querySelector('{TILES}'); return r && r.__csHeld; }}")
    # each page shows the tiles of its own rerun: wait until every sparkline shows the same window in both (the same
    # first candle), then the tiles have the same markup and every closed candle's point is equal, number for number
    deadline = time.monotonic() + 30
    while True:
        a, b = live.tiles.evaluate(TILES_SNAPSHOT), fresh.evaluate(TILES_SNAPSHOT)
        windows = [(ta["points"][:1], ta["points"][1:2]) for ta in a["tiles"]]
        if windows == [(tb["points"][:1], tb["points"][1:2]) for tb in b["tiles"]]:
            break
        assert time.monotonic() < deadline, "the two pages never showed the same windows"
        live.tiles.wait_for_timeout(50)
    assert a["patches"] > b["patches"]
    assert [t["symbol"] for t in a["tiles"]] == [t["symbol"] for t in b["tiles"]] and len(a["tiles"]) == 6
    for ta, tb in zip(a["tiles"], b["tiles"], strict=True):
        assert ta["tags"] == tb["tags"], ta["symbol"]
        assert len(ta["points"]) > 10 and ta["points"][:-1] == tb["points"][:-1], ta["symbol"]
    fresh.context.close()

    # a missed update (the page holds a version the server did not make): it asks, and gets the whole grid once
    live.tiles.evaluate(f"() => {{ document.querySelector('{TILES}').__csHeld.token = -1; }}")
    live.tiles.wait_for_function(
        f"(n) => Number(document.querySelector('{TILES}').dataset.fulls || 0) > n", arg=moved["fulls"], timeout=20_000
    )
    again = live.tiles.evaluate(TILES_SNAPSHOT)
    assert again["asks"] == first["asks"] + 1 and again["cells"] == 6

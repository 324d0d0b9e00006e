"""Deep links, bad links, the line and comparison views, the tiles' colour rule and narrow screens, in headless
Chromium against the real stack.

Every page's own URL opens that page (its navigation entry marked current) with its query parameters and no
"Page not found" modal; an unknown path, nested or not, opens the overview with a quiet line saying so. The app
fixture is this module's own server: the first test is that server's first visit, by a deep link; ``fresh_app``
is a server of a test's own, for a first visit by an unknown path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.ui.component_code import ensure_plotly_js
from tests.browser.chromium import CHART, shot, traces, wait_chart
from tests.dashboard_fixtures import CHROMIUM, StreamlitApp
from tests.stack import Server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt-get install -y chromium"),
]

PAGES = ("Overview", "Candles", "Alerts", "System")
TILES_PRICED = (
    "() => { const p = Array.from(document.querySelectorAll('[data-testid=tile-price]'));"
    " return p.length === 6 && p.every(e => e.textContent.trim() !== '—'); }"
)


def current_page(page: Any) -> str:
    """The navigation entry marked current (``aria-current="page"``)."""
    link = page.locator("[data-testid=stTopNavLink][aria-current=page]")
    link.wait_for(timeout=30_000)
    return link.inner_text().split()[-1]


def no_modal(page: Any) -> None:
    assert page.locator("[role=dialog]").count() == 0, page.locator("[role=dialog]").all_inner_texts()


def test_a_deep_link_as_the_servers_first_visit_opens_its_page(app: StreamlitApp, page: Any) -> None:
    page.goto(app.url + "/candles?symbol=ETHUSDT&interval=5m")
    wait_chart(page)
    assert current_page(page) == "Candles"
    assert page.locator("[data-testid=chart-legend]").inner_text().startswith("ETH/USDT 5m")
    assert page.url.endswith("/candles?symbol=ETHUSDT&interval=5m")
    no_modal(page)


@pytest.mark.parametrize(
    ("path", "title", "text"),
    [
        ("/overview?from=mail", "Overview", "Markets"),  # the URL app.py declares for the default page
        ("/", "Overview", "Markets"),
        ("/candles?symbol=SOLUSDT&interval=1s&view=line", "Candles", "SOL/USDT 1s"),
        ("/alerts", "Alerts", "New alert"),
        ("/system", "System", "Pipeline"),
    ],
)
def test_every_page_opens_at_its_own_url(app: StreamlitApp, page: Any, path: str, title: str, text: str) -> None:
    page.goto(app.url + path)
    page.wait_for_function("(t) => document.body.innerText.includes(t)", arg=text, timeout=30_000)
    assert current_page(page) == title
    no_modal(page)
    if "?" in path:  # the query parameters reach the page and stay in the URL
        assert path.split("?", 1)[1] in page.url


def opens_the_overview_quietly(page: Any, asked: str) -> None:
    """The overview with the quiet line naming ``asked``, no modal, and a page that answers clicks."""
    notice = page.locator(".st-key-unknown-path")
    notice.wait_for(timeout=30_000)
    said = f"There is no page at {asked}, so this is the overview. Pages: Overview, Candles, Alerts, System."
    assert said in notice.inner_text()
    page.wait_for_function(TILES_PRICED, timeout=30_000)
    assert current_page(page) == "Overview"
    no_modal(page)
    page.locator("a.cs-tile[data-symbol=BTCUSDT]").click()  # the page underneath is not inert
    page.wait_for_url("**/candles?*symbol=BTCUSDT*", timeout=20_000)


def test_an_unknown_path_opens_the_overview_with_a_quiet_notice(app: StreamlitApp, page: Any) -> None:
    page.goto(app.url + "/markets")
    opens_the_overview_quietly(page, "/markets")


@pytest.fixture
def fresh_app(stack: Server, tmp_path: Path) -> Iterator[StreamlitApp]:
    """A Streamlit process of this test's own: the test's visit is its first."""
    streamlit = StreamlitApp(stack.url, log_dir=tmp_path)
    yield streamlit
    streamlit.stop()


@pytest.mark.parametrize(
    ("path", "asked"), [("/nope", "/nope"), ("/a/b?from=mail", "/a/b"), ("/candles/x/y", "/candles/x/y")]
)
def test_an_unknown_path_as_a_fresh_servers_first_visit_opens_the_overview_quietly(
    fresh_app: StreamlitApp, page: Any, path: str, asked: str
) -> None:
    page.goto(fresh_app.url + path)
    if "?" in path:  # the query parameters stay in the URL
        assert "from=mail" in page.url
    opens_the_overview_quietly(page, asked)


def test_only_a_nested_page_path_is_redirected(app: StreamlitApp) -> None:
    """A nested path that would get Streamlit's page goes to its one-segment form; assets, the app's static files
    and Streamlit's own routes are answered as before."""
    with httpx.Client(base_url=app.url, timeout=10) as http:
        moved = http.get("/a/b?from=mail")
        assert (moved.status_code, moved.headers["location"]) == (307, "/a%2Fb?from=mail")
        assert http.get("/a%2Fb").status_code == 200
        asset = re.search(r'src="\./(static/js/[^"]+\.js)"', http.get("/").text)
        assert asset is not None
        js = http.get("/" + asset.group(1))
        assert js.status_code == 200 and "javascript" in js.headers["content-type"]
        ensure_plotly_js()  # what the first chart does
        plotly = http.get("/app/static/plotly.min.js")
        assert plotly.status_code == 200 and plotly.content.startswith(b"/**")
        assert http.get("/_stcore/health").text == "ok"


def test_a_bad_candles_link_says_what_it_asked_for_why_not_and_what_is_shown(app: StreamlitApp, page: Any) -> None:
    page.goto(app.url + "/candles?symbol=NOPEUSDT&interval=9m")
    wait_chart(page)
    said = page.locator(".st-key-bad-link").inner_text()
    assert "The link asked for NOPEUSDT · 9m, which can't be shown: the relay carries no NOPEUSDT" in said
    assert "“9m” is not an interval here (1s, 1m, 5m, 15m, 1h)" in said
    legend = page.locator("[data-testid=chart-legend]").inner_text()
    shown = " ".join(legend.split()[:2])  # what the chart shows, e.g. "BNB/USDT 1m"
    assert said.rstrip().endswith(f"Showing {shown} instead."), (said, legend)
    assert shown.endswith(" 1m")
    shot(page, "candles-bad-link")


def test_the_line_view_updates_live(app: StreamlitApp, page: Any) -> None:
    page.goto(app.url + "/candles?symbol=BTCUSDT&interval=1s&view=line&ind=rsi14")
    t = wait_chart(page)
    assert [x["type"] for x in t[:3]] == ["scatter", "scatter", "bar"]  # floor, close, volume
    names = page.evaluate(f"() => document.querySelector('{CHART}')._fullData.map(t => t.name)")
    legend = page.evaluate(
        f"() => document.querySelector('{CHART}')._fullData.filter(t => t.showlegend).map(t => t.name)"
    )
    assert names[1] == "BTC/USDT" and legend == ["RSI 14"]  # the RSI panel has its legend entry
    seq = page.evaluate(f"() => document.querySelector('{CHART}').dataset.seq")
    page.wait_for_function(
        f"(seq) => Number(document.querySelector('{CHART}').dataset.seq) > Number(seq)", arg=seq, timeout=20_000
    )
    page.wait_for_timeout(500)
    shot(page, "candles-line")


def test_the_comparison_view_overlays_symbols_in_percent_and_updates_live(app: StreamlitApp, page: Any) -> None:
    page.goto(app.url + "/candles?interval=1s&view=compare&cmp=BTCUSDT,ETHUSDT,SOLUSDT")
    page.wait_for_selector(CHART, timeout=30_000)
    page.wait_for_function(
        f"() => {{ const g = document.querySelector('{CHART}'); return g && g._fullData && g._fullData.length === 3"
        " && g._fullData.every(t => t.x.length > 0); }",
        timeout=30_000,
    )
    info = page.evaluate(
        f"""() => {{ const g = document.querySelector('{CHART}');
            return {{ names: g._fullData.map(t => t.name), firsts: g._fullData.map(t => t.y[0]),
                      starts: g._fullData.map(t => t.x[0]), suffix: g._fullLayout.yaxis.ticksuffix,
                      event: g.dataset.eventTime }}; }}"""
    )
    assert sorted(n.split()[0] for n in info["names"]) == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    assert info["firsts"] == [0, 0, 0] and len(set(info["starts"])) == 1  # every line starts at 0 % together
    assert info["suffix"] == "%"
    assert "view=compare" in page.url and "cmp=BTCUSDT%2CETHUSDT%2CSOLUSDT" in page.url
    page.wait_for_function(
        f"(t) => Number(document.querySelector('{CHART}').dataset.eventTime) > Number(t)",
        arg=info["event"],
        timeout=20_000,
    )
    shot(page, "candles-compare")


def test_every_tile_colours_pill_price_and_sparkline_by_one_rule(app: StreamlitApp, page: Any) -> None:
    page.goto(app.url + "/")
    page.wait_for_function(TILES_PRICED, timeout=30_000)
    tiles = page.evaluate(
        """() => Array.from(document.querySelectorAll('a.cs-tile')).map(t => ({
            trend: t.dataset.trend, pill: t.querySelector('.cs-pill').className,
            pct: t.querySelector('.cs-pill').innerText, price: t.querySelector('.cs-price').className,
            stroke: t.querySelector('.cs-spark polyline, .cs-spark line').getAttribute('stroke'),
            title: t.getAttribute('title') }))"""
    )
    colors = {"up": "#26a69a", "down": "#ef5350", "flat": "#8a919e"}
    assert len(tiles) == 6
    for t in tiles:
        assert t["pill"] == f"cs-pill cs-{t['trend']}" and t["price"] == f"cs-price cs-{t['trend']}-text", t
        assert t["stroke"] == colors[t["trend"]], t
        assert t["pct"] != "-0.00%" and (t["trend"] == "flat") == (t["pct"] == "+0.00%"), t
        assert "Green: up, red: down, grey: unchanged (0.00%)" in t["title"], t


def test_the_system_figures_fit_their_boxes(app: StreamlitApp, page: Any) -> None:
    page.goto(app.url + "/system")
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('[data-testid=stMetricLabel]'))"
        ".some(e => e.innerText.includes('Messages out'))",
        timeout=30_000,
    )
    cut = page.evaluate(
        """() => Array.from(document.querySelectorAll('[data-testid=stMetric] *'))
            .filter(e => getComputedStyle(e).textOverflow === 'ellipsis' && e.scrollWidth > e.clientWidth + 1)
            .map(e => e.innerText)"""
    )
    assert cut == []


@pytest.mark.parametrize("path", ["/candles?symbol=BTCUSDT&interval=1m", "/candles?view=compare&interval=1m"])
def test_on_a_narrow_screen_the_chart_is_on_the_first_screen(app: StreamlitApp, browser: Any, path: str) -> None:
    context = browser.new_context(viewport={"width": 400, "height": 800}, color_scheme="dark")
    page = context.new_page()
    try:
        page.goto(app.url + path)
        page.wait_for_selector(CHART, timeout=30_000)
        page.wait_for_function(
            f"() => {{ const g = document.querySelector('{CHART}'); return g._fullData && g._fullData.length > 0; }}",
            timeout=30_000,
        )
        box = page.locator(CHART).bounding_box()
        assert box["y"] < 800 / 2, box  # the chart starts in the top half of the first screen
        assert box["width"] > 300
        if "compare" not in path:
            shot(page, "candles-narrow")
    finally:
        context.close()


@pytest.mark.parametrize(("scheme", "width"), [("dark", 1440), ("light", 400)])
def test_screenshots_of_every_page(app: StreamlitApp, browser: Any, scheme: str, width: int) -> None:
    """Every page in both themes, one wide and one narrow (``test-artifacts/``; ``make demo`` makes the README's)."""
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    ready = {
        "overview": TILES_PRICED,
        "candles?symbol=BTCUSDT&interval=1m&ind=ema20": f"() => !!document.querySelector('{CHART}')",
        "alerts": "() => document.body.innerText.includes('New alert')",
        "system": "() => document.body.innerText.includes('Trades/s')",
    }
    try:
        for path, check in ready.items():
            page.goto(f"{app.url}/{path}")
            page.wait_for_function(check, timeout=30_000)
            if "candles" in path:
                wait_chart(page)
                assert len(traces(page)) >= 3
            page.wait_for_timeout(1000)  # let the live fragment draw once more before the picture
            no_modal(page)
            name = path.split("?")[0]
            shot(page, f"{name}-{scheme}{'-narrow' if width < 640 else ''}")
    finally:
        context.close()

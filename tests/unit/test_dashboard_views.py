"""The dashboard's pure view logic: deep-link routing, query parameters refused with a reason, the one colour rule
of a move, the line and comparison figures, the rates chart's gaps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.charts import palette
from services.charts.candles import ChartSpec, candles_figure_spec
from services.charts.compare import CompareSpec, common_start, compare_figure_spec, percent_change
from services.charts.fmt import fmt_pct
from services.charts.frame import candles_frame
from services.charts.rates import break_at_gaps, rates_figure_spec
from services.charts.tiles import TileData, tile_html, tile_tooltip
from services.charts.trend import change_pct, trend
from services.ui.query import pick, refused_text
from services.ui.routes import Route, route
from services.ui.server import flattened, is_script_run
from tests.dashboard_fixtures import T0, decode, series

PATHS = ("overview", "candles", "alerts", "system")


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (None, Route("")),
        ("", Route("")),
        ("overview", Route("")),  # the default page's own path: the default page, not "Page not found"
        ("Overview/", Route("")),
        ("candles", Route("candles")),
        ("SYSTEM", Route("system")),
        ("alerts", Route("alerts")),
        ("nope", Route("", unknown="nope")),
        ("candles/extra", Route("", unknown="candles/extra")),
    ],
)
def test_a_url_path_opens_its_page_or_the_overview(requested, expected) -> None:
    assert route(requested, PATHS, default="overview") == expected


@pytest.mark.parametrize(
    ("raw_path", "root_path", "expected"),
    [
        ("/", "", None),
        ("/candles", "", None),
        ("/a%2Fb", "", None),  # already one segment: no redirect loop
        ("/a/b", "", "/a%2Fb"),
        ("/candles/extra/", "", "/candles%2Fextra"),
        ("/x/y%20z/w", "", "/x%2Fy%20z%2Fw"),
        ("/dash/a/b", "/dash", "/dash/a%2Fb"),  # below a base URL path
        ("/dash/nope", "/dash", None),
    ],
)
def test_a_nested_path_is_sent_to_its_one_segment_form(raw_path, root_path, expected) -> None:
    assert flattened(raw_path, root_path) == expected


def test_the_navigation_runs_as_a_script_and_the_server_imports_it_by_name() -> None:
    assert is_script_run("__main__") and not is_script_run("app")


def test_a_query_value_is_picked_from_the_options_or_refused() -> None:
    symbols = ["BTCUSDT", "ETHUSDT"]
    assert pick(None, symbols, "BTCUSDT").value == "BTCUSDT"
    assert pick("ethusdt", symbols, "BTCUSDT") == pick("ETHUSDT", symbols, "BTCUSDT")
    assert pick("ethusdt", symbols, "BTCUSDT").asked is None
    refused = pick("NOPEUSDT", symbols, "BTCUSDT")
    assert (refused.value, refused.asked) == ("BTCUSDT", "NOPEUSDT")
    assert pick("eth/usdt", symbols, "BTCUSDT", key=lambda s: s.replace("/", "").upper()).value == "ETHUSDT"


def test_a_refused_link_says_what_was_asked_why_and_what_is_shown() -> None:
    text = refused_text(
        [("NOPEUSDT", "the relay carries no NOPEUSDT"), ("9m", "“9m” is not an interval here (1s, 1m)")], "BNB/USDT 1m"
    )
    assert text == (
        "The link asked for **NOPEUSDT** · **9m**, which can't be shown: the relay carries no NOPEUSDT; "
        "“9m” is not an interval here (1s, 1m). Showing **BNB/USDT 1m** instead."
    )
    assert "**<b>x</b>**" not in refused_text([("<b>x</b>*", "no")], "A")  # markup in a URL stays text


@pytest.mark.parametrize(
    ("pct", "expected", "text"),
    [
        (0.12, "up", "+0.12%"),
        (-0.12, "down", "-0.12%"),
        (0.0, "flat", "+0.00%"),
        (-0.004, "flat", "+0.00%"),  # shows as zero: neutral, never a red "-0.00%"
        (0.004, "flat", "+0.00%"),
        (-0.005001, "down", "-0.01%"),
        (None, "flat", "—"),
        (math.nan, "flat", "—"),
    ],
)
def test_one_colour_rule_for_a_move(pct, expected, text) -> None:
    assert trend(pct) == expected
    assert fmt_pct(pct) == text


def test_change_pct() -> None:
    assert change_pct(200.0, 201.0) == pytest.approx(0.5)
    assert change_pct(0.0, 1.0) is None and change_pct(None, 1.0) is None


def _tile(change: float | None, spark: tuple[float, ...]) -> TileData:
    return TileData("BTCUSDT", 100.0, change, "24h", 101.0, 99.0, 1e6, spark, "last 2h", T0)


def test_a_tile_colours_pill_price_and_sparkline_by_one_rule() -> None:
    # the change is up while the last two hours fell: the sparkline follows the pill, not its own slope
    html = tile_html(_tile(0.12, (3.0, 2.0, 1.0)))
    assert 'class="cs-pill cs-up">+0.12%' in html
    assert 'class="cs-price cs-up-text"' in html
    assert palette.UP in html and palette.DOWN not in html
    flat = tile_html(_tile(-0.001, (1.0, 2.0, 1.5)))
    assert 'class="cs-pill cs-flat">+0.00%' in flat and "cs-price cs-flat-text" in flat
    assert palette.FLAT in flat and palette.UP not in flat and palette.DOWN not in flat
    down = tile_html(_tile(-1.5, (1.0, 2.0)))
    assert "cs-pill cs-down" in down and "cs-price cs-down-text" in down and palette.DOWN in down


def test_a_tile_explains_its_colours_in_its_tooltip() -> None:
    t = _tile(0.12, (1.0, 2.0))
    assert tile_tooltip(t) == (
        "Change 24h (price against the open 24h; the line shows the last 2h). "
        "Green: up, red: down, grey: unchanged (0.00%), over the span shown beside the change."
    )
    assert 'title="Change 24h (price against the open 24h; the line shows the last 2h).' in tile_html(t)


def test_the_line_view_draws_the_close_as_an_area_over_the_lowest_close() -> None:
    df = candles_frame(series([100.0, 102.0, 101.0, 105.0]))
    fig = candles_figure_spec(df, ChartSpec("BTCUSDT", "1m", style="line"))
    floor, line = fig["data"][:2]
    assert [t["type"] for t in fig["data"]] == ["scatter", "scatter", "bar"]
    np.testing.assert_allclose(decode(line["y"]), [100.0, 102.0, 101.0, 105.0])
    np.testing.assert_allclose(decode(floor["y"]), [100.0, 100.0, 100.0, 100.0])
    assert line["fill"] == "tonexty" and floor["hoverinfo"] == "skip"
    assert line["line"]["color"] == palette.UP  # +5 % over the range
    rose_then_dipped = candles_figure_spec(
        candles_frame(series([100.0, 110.0, 109.0])), ChartSpec("X", "1m", style="line")
    )
    assert rose_then_dipped["layout"]["shapes"][0]["line"]["color"] == palette.UP  # the mark follows the line's
    # move (+9 %), not the last candle's dip
    down = candles_figure_spec(candles_frame(series([105.0, 100.0])), ChartSpec("BTCUSDT", "1m", style="line"))
    assert down["data"][1]["line"]["color"] == palette.DOWN
    assert candles_figure_spec(candles_frame([]), ChartSpec("BTCUSDT", "1m", style="line"))["data"][1]["name"]


def test_percent_change_from_a_base_candle() -> None:
    df = candles_frame(series([100.0, 110.0, 99.0, 121.0]))
    pct = percent_change(df, since=T0 + 60_000)  # from the second candle (close 110)
    np.testing.assert_allclose(pct["pct"], [0.0, -10.0, 10.0])
    assert pct["open_time"].tolist() == [T0 + 60_000, T0 + 120_000, T0 + 180_000]


def test_the_comparison_starts_every_line_at_the_common_start_and_ranks_the_legend() -> None:
    frames = {
        "BTCUSDT": candles_frame(series([100.0, 101.0, 102.0, 103.0], symbol="BTCUSDT")),  # from T0
        "ETHUSDT": candles_frame(series([50.0, 40.0, 60.0], symbol="ETHUSDT", t0=T0 + 60_000)),  # a minute later
        "SOLUSDT": candles_frame(series([10.0, 9.0, 9.5], symbol="SOLUSDT", t0=T0 + 60_000)),
    }
    assert common_start(frames) == T0 + 60_000
    fig = compare_figure_spec(frames, CompareSpec(("BTCUSDT", "ETHUSDT", "SOLUSDT"), "1m"))
    names = [t["name"] for t in fig["data"]]
    assert names == ["ETH/USDT +20.00%", "BTC/USDT +1.98%", "SOL/USDT -5.00%"]  # largest move first
    btc = next(t for t in fig["data"] if t["name"].startswith("BTC"))
    np.testing.assert_allclose(decode(btc["y"]), [0.0, 100 * (102 / 101 - 1), 100 * (103 / 101 - 1)])
    np.testing.assert_allclose(decode(btc["x"]), [T0 + 60_000, T0 + 120_000, T0 + 180_000])
    assert fig["layout"]["meta"]["since"] == T0 + 60_000
    assert fig["layout"]["yaxis"]["ticksuffix"] == "%"
    assert fig["layout"]["meta"]["symbols"] == ["ETHUSDT", "BTCUSDT", "SOLUSDT"]


def test_the_comparison_of_nothing_still_builds() -> None:
    fig = compare_figure_spec({}, CompareSpec(("BTCUSDT",), "1m"))
    assert fig["data"] == [] and fig["layout"]["meta"]["since"] is None


def test_the_rates_line_breaks_where_no_samples_were_taken() -> None:
    t = [0.0, 1000.0, 2000.0, 60_000.0, 61_000.0]
    times, lines = break_at_gaps(t, {"trades/s": [1.0, 2.0, 3.0, 4.0, 5.0]})
    assert times.tolist() == [0.0, 1000.0, 2000.0, 31_000.0, 60_000.0, 61_000.0]
    assert np.isnan(lines["trades/s"][3]) and lines["trades/s"][[0, 1, 2, 4, 5]].tolist() == [1, 2, 3, 4, 5]
    fig = rates_figure_spec(t, {"trades/s": [1.0, 2.0, 3.0, 4.0, 5.0]})
    assert np.isnan(decode(fig["data"][0]["y"])).sum() == 1 and fig["data"][0]["connectgaps"] is False
    same, _ = break_at_gaps([0.0, 1000.0, 2000.0], {"x": [1.0, 2.0, 3.0]})
    assert same.tolist() == [0.0, 1000.0, 2000.0]

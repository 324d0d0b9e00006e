"""Figure structure of the chart builders: traces, colours, shared axes, uirevision, formatting."""

from __future__ import annotations

import numpy as np
import pytest

from backend.indicators import ema
from services.charts import palette
from services.charts.candles import ChartSpec, candles_figure, candles_figure_spec
from services.charts.fmt import fmt_compact, fmt_price, pair_label, split_symbol
from services.charts.frame import candles_frame
from services.charts.sparkline import sparkline_svg
from tests.dashboard_fixtures import T0, decode, series

CLOSES = [100.0, 102.0, 101.0, 105.0, 104.0, 104.0, 103.5]


@pytest.fixture
def df():
    return candles_frame(series(CLOSES))


def test_candlestick_and_volume_traces_with_data(df) -> None:
    fig = candles_figure_spec(df, ChartSpec("BTCUSDT", "1m"))
    types = [t["type"] for t in fig["data"]]
    assert types == ["candlestick", "bar"]
    candle, volume = fig["data"]
    np.testing.assert_allclose(decode(candle["close"]), CLOSES)
    np.testing.assert_allclose(decode(candle["x"]), df["open_time"].to_numpy(dtype=float))
    np.testing.assert_allclose(decode(volume["y"]), df["volume"])
    assert candle["increasing"]["line"]["color"] == palette.UP == "#26a69a"
    assert candle["decreasing"]["line"]["color"] == palette.DOWN == "#ef5350"


def test_volume_bars_are_coloured_by_candle_direction(df) -> None:
    volume = candles_figure_spec(df, ChartSpec("BTCUSDT", "1m"))["data"][1]
    up = decode(volume["marker"]["color"])
    assert up.tolist() == [int(c >= o) for o, c in zip(df["open"], df["close"], strict=True)]
    scale = dict((v, c) for v, c in volume["marker"]["colorscale"])
    assert scale[0.0] == palette.DOWN_VOLUME and scale[1.0] == palette.UP_VOLUME
    assert (volume["marker"]["cmin"], volume["marker"]["cmax"]) == (0, 1)


def test_panels_share_the_x_axis_without_a_range_slider(df) -> None:
    layout = candles_figure_spec(df, ChartSpec("BTCUSDT", "1m"))["layout"]
    assert layout["xaxis2"]["matches"] == "x"
    assert layout["xaxis"]["rangeslider"] == {"visible": False}
    assert layout["xaxis"]["type"] == "date"
    assert layout["xaxis"]["showticklabels"] is False and layout["xaxis2"]["showticklabels"] is True
    price_dom, vol_dom = layout["yaxis"]["domain"], layout["yaxis2"]["domain"]
    assert vol_dom[1] < price_dom[0], "volume sits beneath the price"


def test_uirevision_is_stable_across_updates_and_changes_with_the_view(df) -> None:
    spec = ChartSpec("BTCUSDT", "1m", ("ema20",))
    a = candles_figure_spec(df, spec)["layout"]["uirevision"]
    b = candles_figure_spec(candles_frame(series([*CLOSES, 99.0])), spec)["layout"]["uirevision"]
    assert a == b
    assert candles_figure_spec(df, ChartSpec("ETHUSDT", "1m"))["layout"]["uirevision"] != a
    assert candles_figure_spec(df, ChartSpec("BTCUSDT", "5m"))["layout"]["uirevision"] != a
    assert "range" not in candles_figure_spec(df, spec)["layout"]["xaxis"], "autorange, so a user's zoom is kept"


def test_last_price_line_and_label(df) -> None:
    layout = candles_figure_spec(df, ChartSpec("BTCUSDT", "1m"))["layout"]
    (line,) = layout["shapes"]
    assert line["y0"] == line["y1"] == CLOSES[-1]
    assert line["line"]["dash"] == "dash"
    assert line["line"]["color"] == palette.DOWN  # the last candle fell: 104.0 → 103.5
    (label,) = layout["annotations"]
    assert label["text"] == "<b>103.50</b>" and label["bgcolor"] == palette.DOWN
    assert layout["yaxis"]["tickformat"] == ",.2f"
    assert layout["meta"]["last_close"] == CLOSES[-1] and layout["meta"]["candles"] == len(CLOSES)


def test_overlays_and_an_rsi_panel() -> None:
    closes = list(np.linspace(100, 130, 40))
    df = candles_frame(series(closes))
    fig = candles_figure_spec(df, ChartSpec("BTCUSDT", "1m", ("ema20", "bb20", "rsi14")))
    names = [t["name"] for t in fig["data"]]
    assert names[:2] == ["BTC/USDT", "Volume"]
    assert "EMA 20" in names and "Bollinger 20, 2" in names and "RSI 14" in names
    ema_trace = next(t for t in fig["data"] if t["name"] == "EMA 20")
    np.testing.assert_allclose(decode(ema_trace["y"]), ema(df["close"], 20), equal_nan=True)
    rsi_trace = next(t for t in fig["data"] if t["name"] == "RSI 14")
    assert rsi_trace["yaxis"] == "y3" and fig["layout"]["xaxis3"]["matches"] == "x"
    assert fig["layout"]["yaxis3"]["range"] == [0, 100]
    assert [s["y0"] for s in fig["layout"]["shapes"][1:]] == [30, 70]
    assert rsi_trace["showlegend"] is True  # the RSI panel is named in the legend like every overlay


def test_local_time_shifts_the_axis_to_the_browser_zone(df) -> None:
    utc = decode(candles_figure_spec(df, ChartSpec("BTCUSDT", "1m"))["data"][0]["x"])
    berlin = decode(candles_figure_spec(df, ChartSpec("BTCUSDT", "1m", tz="Europe/Berlin"))["data"][0]["x"])
    assert utc[0] == T0
    assert (berlin - utc == 3_600_000).all()  # November: UTC+1


def test_the_spec_is_a_valid_plotly_figure(df) -> None:
    fig = candles_figure(df, ChartSpec("BTCUSDT", "1s", ("sma20", "vwap", "rsi14")))
    assert [t.type for t in fig.data][:2] == ["candlestick", "bar"]
    assert fig.layout.xaxis2.matches == "x"
    assert fig.layout.uirevision == "BTCUSDT:1s:UTC"


def test_an_empty_frame_still_builds() -> None:
    fig = candles_figure_spec(candles_frame([]), ChartSpec("BTCUSDT", "1m"))
    assert [t["type"] for t in fig["data"]] == ["candlestick", "bar"]
    assert "shapes" not in fig["layout"]


def test_sparkline_svg() -> None:
    up = sparkline_svg([1, 2, 3])
    assert "<polyline" in up and palette.UP in up
    assert palette.DOWN in sparkline_svg([3, 2, 1])
    assert palette.FLAT in sparkline_svg([2, 3, 2])  # no change over the series: neutral
    assert palette.FLAT in sparkline_svg([5.0]) and "<line" in sparkline_svg([5.0])
    assert palette.UP in sparkline_svg([3, 2, 1], direction="up")  # a tile colours it by its own rule


@pytest.mark.parametrize(
    ("price", "text"),
    [(97012.5, "97,012.50"), (3456.789, "3,456.79"), (245.678, "245.68"), (1.43219, "1.4322"),
     (0.412351, "0.41235"), (0.00001234, "0.00001234"), (None, "—")],
)  # fmt: skip
def test_price_format_per_magnitude(price, text) -> None:
    assert fmt_price(price) == text


def test_symbols_and_compact_numbers() -> None:
    assert split_symbol("BTCUSDT") == ("BTC", "USDT")
    assert pair_label("ETHBTC") == "ETH/BTC"
    assert pair_label("XYZ") == "XYZ"
    assert fmt_compact(1_234_567) == "1.23M"
    assert fmt_compact(950) == "950"


def test_fmt_ms_reads_latencies_and_ages() -> None:
    from services.charts.fmt import fmt_ms

    assert [fmt_ms(v) for v in (7, 480, 1200, 720_000, 18_000_000, 169_046_112_651, None)] == [
        "7 ms", "480 ms", "1.2 s", "12 min", "5.0 h", "1957 d", "—"
    ]  # fmt: skip

"""The live chart's patches: what changed between two figures, and the browser's side of applying it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from services.charts.arrays import typed
from services.charts.candles import ChartSpec, candles_figure_spec
from services.charts.delta import apply_patch, decode, figure_patch, patched_value, value_patch
from services.ui import component_code
from services.ui.plot import PatchCache, plot_frame

T0 = 1_732_665_600_000


def _fig(xs: list[float], closes: list[float], up: list[int], title: str = "a") -> dict:
    return {
        "data": [
            {"type": "scatter", "x": typed(np.array(xs)), "y": typed(np.array(closes)), "line": {"color": "red"}},
            {"type": "bar", "x": typed(np.array(xs)), "marker": {"color": typed(np.array(up, dtype=np.uint8))}},
        ],
        "layout": {"title": title, "xaxis": {"type": "date"}, "meta": {"seq": len(xs)}},
    }


def test_forming_candle_moves_sends_only_the_last_point() -> None:
    old = _fig([1, 2, 3], [10, 11, 12], [1, 1, 1])
    new = _fig([1, 2, 3], [10, 11, 11.5], [1, 1, 0])
    patch = figure_patch(old, new)
    assert patch is not None
    assert set(patch["traces"]) == {"0", "1"}
    p0, p1 = patch["traces"]["0"], patch["traces"]["1"]
    assert (p0["drop"], p0["keep"], p0["set"]) == (0, 2, {})
    assert decode(p0["tail"]["y"]).tolist() == [11.5]
    assert decode(p0["tail"]["x"]).tolist() == [3.0]
    assert decode(p1["tail"]["marker.color"]).tolist() == [0]
    assert patch["layout"] == {} and patch["layout_removed"] == []
    assert apply_patch(old, patch) == new


def test_new_candle_slides_the_window() -> None:
    old = _fig([1, 2, 3], [10, 11, 12], [1, 1, 1])
    new = _fig([2, 3, 4], [11, 12, 13], [1, 1, 1], title="b")
    patch = figure_patch(old, new)
    assert patch is not None
    p0 = patch["traces"]["0"]
    assert (p0["drop"], p0["keep"]) == (1, 2)
    assert decode(p0["tail"]["y"]).tolist() == [13.0]
    assert patch["layout"] == {"title": {"$set": "b"}}
    assert apply_patch(old, patch) == new


def test_unchanged_trace_and_changed_property() -> None:
    old = _fig([1, 2], [10, 11], [1, 1])
    new = _fig([1, 2], [10, 11], [1, 1])
    new["data"][0]["line"] = {"color": "green"}
    patch = figure_patch(old, new)
    assert patch is not None
    assert list(patch["traces"]) == ["0"]
    assert patch["traces"]["0"]["set"] == {"line": {"color": "green"}}
    assert decode(patch["traces"]["0"]["tail"]["y"]).tolist() == []
    assert apply_patch(old, patch) == new


def test_nan_warm_up_counts_as_unchanged() -> None:
    old = _fig([1, 2, 3], [float("nan"), 11, 12], [1, 1, 1])
    new = _fig([1, 2, 3], [float("nan"), 11, 12.5], [1, 1, 1])
    patch = figure_patch(old, new)
    assert patch is not None and patch["traces"]["0"]["keep"] == 2


def test_whole_figure_when_the_structure_or_range_changes() -> None:
    base = _fig([1, 2, 3], [10, 11, 12], [1, 1, 1])
    longer = _fig([0, 1, 2, 3], [9, 10, 11, 12], [1, 1, 1, 1])  # more bars: starts before the old window
    assert figure_patch(base, longer) is None
    disjoint = _fig([7, 8], [1, 2], [1, 1])
    assert figure_patch(base, disjoint) is None
    fewer_traces = {"data": base["data"][:1], "layout": base["layout"]}
    assert figure_patch(base, fewer_traces) is None
    other_kind = _fig([1, 2, 3], [10, 11, 12], [1, 1, 1])
    other_kind["data"][0]["type"] = "candlestick"
    assert figure_patch(base, other_kind) is None


def _frame(n: int, start: int, last_close: float) -> pd.DataFrame:
    t = T0 + (start + np.arange(n)) * 1000
    c = 100.0 + (start + np.arange(n)) % 7
    c[-1] = last_close
    return pd.DataFrame(
        {"open_time": t, "open": c - 0.5, "high": c + 1, "low": c - 1, "close": c, "volume": 1.0 + (t % 5),
         "quote_volume": 1.0, "trades": 3, "event_time": t + 500, "seq": start + np.arange(n)}
    )  # fmt: skip


def test_real_candles_figure_round_trips_and_is_small() -> None:
    spec = ChartSpec("BTCUSDT", "1s")
    old = candles_figure_spec(_frame(500, 0, 101.0), spec)
    moved = candles_figure_spec(_frame(500, 0, 101.25), spec)
    slid = candles_figure_spec(_frame(500, 1, 102.0), spec)
    for new in (moved, slid):
        patch = figure_patch(old, new)
        assert patch is not None
        assert apply_patch(old, patch) == new
    moved_patch = figure_patch(old, moved)
    assert moved_patch is not None
    assert {k: (v["drop"], v["keep"]) for k, v in moved_patch["traces"].items()} == {"0": (0, 499)}
    assert sorted(moved_patch["layout"]) == ["annotations", "meta", "shapes"]
    assert len(json.dumps(moved_patch)) < 2_000  # the whole figure is about 60 KB


def test_patch_cache_sends_full_patch_or_nothing() -> None:
    spec = ChartSpec("BTCUSDT", "1s")
    a = plot_frame(candles_figure_spec(_frame(300, 0, 101.0), spec))
    b = plot_frame(candles_figure_spec(_frame(300, 0, 101.5), spec))
    cache = PatchCache()
    assert cache.update(None, a) == a.full
    assert json.loads(cache.update(a, a)) == {"base": a.token, "token": a.token}
    body = json.loads(cache.update(a, b))
    assert (body["base"], body["token"]) == (a.token, b.token)
    assert cache.update(a, b) is cache.update(a, b)  # shared by every session a refresh apart
    unrelated = plot_frame(candles_figure_spec(_frame(300, 1000, 101.0), spec))
    assert cache.update(a, unrelated) == unrelated.full
    assert json.loads(a.full)["token"] == a.token


def test_layout_changes_down_to_the_number_that_moved() -> None:
    old = {"shapes": [{"y0": 1.0, "y1": 1.0, "line": {"color": "red", "width": 1}}, {"y0": 30}], "title": "a"}
    new = {"shapes": [{"y0": 2.0, "y1": 2.0, "line": {"color": "green", "width": 1}}, {"y0": 30}], "title": "a"}
    patch = value_patch(old, new)
    line = {"$merge": {"color": {"$set": "green"}}}
    first = {"$merge": {"y0": {"$set": 2.0}, "y1": {"$set": 2.0}, "line": line}}
    assert patch == {"$merge": {"shapes": {"$items": {"0": first}}}}
    assert patched_value(old, patch) == new
    assert value_patch([1, 2], [1, 2, 3]) == {"$set": [1, 2, 3]}
    assert value_patch({"a": 1}, {"b": 1}) == {"$set": {"b": 1}}


def test_a_short_tail_goes_as_a_plain_list_a_long_or_nan_one_as_a_typed_array() -> None:
    old = _fig([1, 2, 3], [10, 11, 12], [1, 1, 1])
    new = _fig([1, 2, 3, 4], [10, 11, 12.25, 13.5], [1, 1, 1, 0])
    p = figure_patch(old, new)
    assert p is not None
    assert p["traces"]["0"]["tail"] == {"x": [3.0, 4.0], "y": [12.25, 13.5]}  # from the first point that moved
    assert p["traces"]["1"]["tail"] == {"x": [4.0], "marker.color": [0]}  # the volume bars kept their three
    assert apply_patch(old, p)["data"][0]["y"] == new["data"][0]["y"]
    long = _fig(list(range(1, 11)), [float(v) for v in range(10)], [1] * 10)
    assert isinstance(figure_patch(old, long)["traces"]["0"]["tail"]["y"], dict)  # 7 new points: typed
    warm = _fig([1, 2, 3, 4], [10, 11, 12, float("nan")], [1, 1, 1, 1])
    assert isinstance(figure_patch(old, warm)["traces"]["0"]["tail"]["y"], dict)  # NaN has no JSON number
    assert "NaN" not in json.dumps(figure_patch(old, new))


def test_each_component_loads_its_function_from_a_versioned_file(tmp_path: Path) -> None:
    """A refresh names the component's file instead of carrying code; a new version is a new name."""
    (tmp_path / "cs-plot-0123456789ab.js").write_text("stale")
    (tmp_path / "plotly.min.js").write_text("kept")
    assert component_code.ensure_entries(tmp_path)
    version = component_code._IMPL_VERSION
    assert len(version) == 12
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"cs-cells-{version}.js", f"cs-plot-{version}.js", "plotly.min.js"]
    assert (tmp_path / f"cs-plot-{version}.js").read_text() == (
        f"export {{ plot as default }} from './candlestream_plot.js?v={version}';\n"
    )
    assert (tmp_path / f"cs-cells-{version}.js").read_text() == (
        f"export {{ cells as default }} from './candlestream_plot.js?v={version}';\n"
    )
    assert "export function plot(" in component_code._IMPL_JS and "export function cells(" in component_code._IMPL_JS

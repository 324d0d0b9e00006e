"""The alerts' pure builders: markers on the candles chart, the preview figure, rules in words, form checks."""

from __future__ import annotations

import numpy as np
import pytest

from backend.models import AlertRule, Delivery
from services.alert_draft import Draft, draft_body, kind_inputs, split_targets
from services.charts.alert_text import condition_text, deliveries_text, fmt_ago, frequency_text, state_badge
from services.charts.alerts import preview_figure_spec, preview_summary, rule_levels, watched_indicators
from services.charts.candles import ChartSpec, candles_figure_spec
from services.charts.frame import candles_frame
from services.charts.marks import AlertMark, marker_trace, marks_of
from services.charts.palette import ALERT
from tests.dashboard_fixtures import T0, decode, series

CLOSES = [100.0, 102.0, 101.0, 105.0, 104.0, 104.0, 103.5]
MINUTE = 60_000


@pytest.fixture
def df():
    return candles_frame(series(CLOSES))


def test_a_marker_sits_above_each_candle_an_alert_fired_on(df) -> None:
    marks = (AlertMark(T0 + 3 * MINUTE, "BTCUSDT is above 104"), AlertMark(T0 + 5 * MINUTE, "again"))
    fig = candles_figure_spec(df, ChartSpec("BTCUSDT", "1m", markers=marks))
    trace = fig["data"][-1]
    assert trace["name"] == "Alerts" and trace["mode"] == "markers" and trace["marker"]["color"] == ALERT
    np.testing.assert_allclose(decode(trace["x"]), [T0 + 3 * MINUTE, T0 + 5 * MINUTE])
    highs = df["high"].to_numpy()[[3, 5]]
    assert (decode(trace["y"]) > highs).all(), "above the candle's high"
    assert trace["hovertext"] == ["🔔 BTCUSDT is above 104", "🔔 again"]
    assert fig["layout"]["uirevision"] == ChartSpec("BTCUSDT", "1m").uirevision, "zoom survives new markers"


def test_alerts_on_one_candle_share_a_marker_and_others_are_left_out(df) -> None:
    marks = [AlertMark(T0 + MINUTE, f"m{i}") for i in range(6)] + [AlertMark(T0 - MINUTE, "before the chart")]
    trace = marker_trace(df, marks, "UTC")
    assert trace is not None and len(decode(trace["x"])) == 1
    assert trace["hovertext"][0].count("🔔") == 4 and "2 more" in trace["hovertext"][0]
    assert marker_trace(df, [AlertMark(T0 - MINUTE, "off")], "UTC") is None
    assert marker_trace(df, [], "UTC") is None
    assert [t["type"] for t in candles_figure_spec(df, ChartSpec("BTCUSDT", "1m"))["data"]] == ["candlestick", "bar"]


def test_marker_text_is_escaped_and_marks_skip_alerts_without_a_candle() -> None:
    class Fire:
        def __init__(self, open_time: int | None, message: str) -> None:
            self.open_time, self.message = open_time, message

    marks = marks_of([Fire(T0 + MINUTE, "b"), Fire(None, "feed silent"), Fire(T0, "<a>")])
    assert marks == (AlertMark(T0, "<a>"), AlertMark(T0 + MINUTE, "b"))
    trace = marker_trace(candles_frame(series(CLOSES)), marks, "UTC")
    assert trace is not None and trace["hovertext"][0] == "🔔 &lt;a&gt;"


def test_preview_draws_levels_watched_indicators_and_would_fire_markers(df) -> None:
    rule = AlertRule(symbol="BTCUSDT", interval="1m", kind="channel_exit", threshold=[104.5, 101.5], watch="ema20")
    fig = preview_figure_spec(df, (AlertMark(T0 + 3 * MINUTE, "left"),), rule)
    names = [t["name"] for t in fig["data"]]
    assert names[-1] == "Would fire" and "EMA 20" in names
    levels = [s["y0"] for s in fig["layout"]["shapes"] if s.get("line", {}).get("color") == ALERT]
    assert levels == [101.5, 104.5]
    assert fig["layout"]["meta"]["fires"] == 1
    assert fig["layout"]["height"] < 560 and fig["layout"]["uirevision"].startswith("preview:")


def test_rule_levels_and_indicators_per_kind() -> None:
    assert rule_levels(AlertRule(symbol="X", kind="price_above", threshold=97000)) == [97000.0]
    assert rule_levels(AlertRule(symbol="X", kind="cross_up", threshold="ema50")) == []
    assert rule_levels(AlertRule(symbol="X", kind="pct_move", threshold=2.0, lookback=5)) == []
    cross = AlertRule(symbol="X", kind="cross_up", threshold="ema50", watch="ema20")
    assert watched_indicators(cross) == ("ema20", "ema50")
    assert watched_indicators(AlertRule(symbol="X", kind="price_above", threshold=1, watch="bb20_upper")) == ("bb20",)


def test_preview_summary_says_how_often_over_how_long() -> None:
    assert preview_summary(3, 240, "1m") == "Would have fired <b>3 times</b> over the last 240 candles (4 h of 1m)."
    assert "<b>once</b>" in preview_summary(1, 60, "1s") and "<b>never</b>" in preview_summary(0, 60, "1s")
    assert "nothing to try" in preview_summary(0, 0, "1m")


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"kind": "cross_up", "threshold": 97000}, "close crosses above 97,000"),
        ({"kind": "cross", "threshold": "ema50", "watch": "ema20"}, "EMA 20 crosses EMA 50"),
        ({"kind": "price_below", "threshold": 0.4123}, "close is below 0.41230"),
        ({"kind": "channel_enter", "threshold": [3700, 3600]}, "close enters 3,600 – 3,700"),
        ({"kind": "pct_move", "threshold": 2.5, "lookback": 20}, "close moves 2.5% over 20 candles"),
        ({"kind": "volume_spike", "factor": 3, "lookback": 20}, "volume over 3× its 20-candle mean"),
        ({"kind": "feed_silent", "threshold": 30}, "no trade for 30 s"),
        ({"kind": "price_above", "threshold": 70, "watch": "rsi14"}, "RSI 14 is above 70.0000"),
    ],
)
def test_conditions_read_like_sentences(fields: dict, text: str) -> None:
    assert condition_text(AlertRule(symbol="BTCUSDT", **fields)) == text


def test_frequency_state_deliveries_and_ago() -> None:
    rule = AlertRule(symbol="X", frequency="every", cooldown_s=300)
    assert frequency_text(rule) == "every 5 min at most"
    assert frequency_text(AlertRule(symbol="X", frequency="per_close")) == "on candle close"
    assert "cs-badge-armed" in state_badge("armed") and ">Fired<" in state_badge("fired")
    ok = Delivery(target="https://h.example/***", status="delivered", attempts=1)
    bad = Delivery(target="tgram://***", status="failed", attempts=3, last_error="HTTP 500")
    assert deliveries_text([ok, bad]) == "✓ https://h.example/*** · ✗ tgram://*** ×3 (HTTP 500)"
    assert deliveries_text([]) == "no targets"
    assert fmt_ago(None) == "never" and fmt_ago(1_000, now_ms=13_500) == "12 s ago"
    assert fmt_ago(0, now_ms=5 * MINUTE + 1) == "5 min ago"


def test_the_form_offers_only_the_kinds_fields() -> None:
    assert kind_inputs("price_above") == {"level", "watch"}
    assert kind_inputs("channel_exit") == {"channel", "watch"}
    assert kind_inputs("pct_move") == {"pct", "lookback", "watch"}
    assert kind_inputs("volume_spike") == {"factor", "lookback"}
    assert kind_inputs("feed_silent") == {"seconds"}


def test_a_draft_becomes_the_body_the_relay_takes() -> None:
    targets = " https://a.example/x \n\n"
    draft = Draft("BTCUSDT", "1s", "cross_up", level=97000.0, lookback=9, factor=2.0, targets=targets)
    body, problems = draft_body(draft, now_ms=0)
    assert problems == {}
    assert body == {
        "symbol": "BTCUSDT", "interval": "1s", "kind": "cross_up", "threshold": 97000.0, "watch": "close",
        "frequency": "once", "cooldown_s": 0, "lookback": None, "factor": None, "expires_at": None,
        "targets": ["https://a.example/x"], "enabled": True, "note": "",
    }  # fmt: skip
    body, _ = draft_body(Draft("ETHUSDT", "1m", "cross", level_indicator="ema50", watch="ema20"), now_ms=0)
    assert body["threshold"] == "ema50" and body["watch"] == "ema20"
    body, _ = draft_body(Draft("ETHUSDT", "1m", "volume_spike", factor=3.0, lookback=20, watch="ema20"), now_ms=0)
    assert (body["factor"], body["lookback"], body["watch"], body["threshold"]) == (3.0, 20, "close", None)


@pytest.mark.parametrize(
    ("draft", "field"),
    [
        (Draft("X", "1m", "price_above"), "threshold"),
        (Draft("X", "1m", "channel_enter", low=5.0, high=4.0), "threshold"),
        (Draft("X", "1m", "cross", level_indicator="ema20", watch="ema20"), "threshold"),
        (Draft("X", "1m", "pct_move", pct=0.0, lookback=5), "threshold"),
        (Draft("X", "1m", "pct_move", pct=2.0), "lookback"),
        (Draft("X", "1m", "volume_spike", lookback=5), "factor"),
        (Draft("X", "1m", "feed_silent", seconds=0), "threshold"),
        (Draft("X", "1m", "price_above", level=1.0, frequency="every"), "cooldown_s"),
        (Draft("X", "1m", "price_above", level=1.0, expires_at=5), "expires_at"),
        (Draft("X", "1m", "price_above", level=1.0, targets="hooks.example.com"), "targets"),
    ],
)
def test_problems_are_found_before_sending_and_named_by_field(draft: Draft, field: str) -> None:
    _, problems = draft_body(draft, now_ms=10)
    assert list(problems) == [field]


def test_targets_one_per_line() -> None:
    assert split_targets("tgram://a/b\n  \n discord://c/d ") == ["tgram://a/b", "discord://c/d"]

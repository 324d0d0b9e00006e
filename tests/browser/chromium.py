"""What browser tests share: screenshots (to ``test-artifacts/`` and ``$CANDLES_SCREENSHOTS_DIR``) and chart reads."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from tests.stack import ROOT

ARTIFACTS = ROOT / "test-artifacts"
CHART = ".cs-plot.js-plotly-plot"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT")


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    extra = os.environ.get("CANDLES_SCREENSHOTS_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(extra) / path.name)
    return path


def traces(page: Any) -> list[dict[str, Any]]:
    return page.evaluate(
        f"""() => {{
          const g = document.querySelector('{CHART}');
          return g && g._fullData ? g._fullData.map(t => ({{
            type: t.type, n: (t.x || []).length,
            up: t.increasing && t.increasing.line.color, down: t.decreasing && t.decreasing.line.color,
            xaxis: t.xaxis, yaxis: t.yaxis }})) : [];
        }}"""
    )


def candle_times(page: Any) -> list[int]:
    """The open times (ms) of the candles the chart shows, in order."""
    return page.evaluate(
        f"""() => Array.from(document.querySelector('{CHART}').data[0].x, (x) => Math.round(Number(new Date(x))))"""
    )


def wait_chart(page: Any, timeout_s: float = 30) -> list[dict[str, Any]]:
    page.wait_for_selector(CHART, timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        t = traces(page)
        if len(t) >= 2 and t[0]["n"] > 0:
            return t
        page.wait_for_timeout(200)
    raise AssertionError("the chart never got candles")

"""The capture command's pure parts: frame resampling, URLs, the GIF filter, options, its README."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.capture import (
    NO_CHROMIUM,
    Capture,
    CaptureOptions,
    demo_readme,
    find_chromium,
    gif_filter,
    page_url,
    parse_args,
    resample,
)


def test_resample_holds_the_last_frame_through_still_moments() -> None:
    # frames at 0, 0.05, 0.5 and 1.2 s; 4 fps for 1.5 s → ticks at 0, .25, .5, .75, 1, 1.25
    assert resample([10.0, 10.05, 10.5, 11.2], 4, 1.5) == [0, 1, 2, 2, 2, 3]
    assert resample([5.0], 10, 0.5) == [0, 0, 0, 0, 0]
    assert resample([], 10, 2) == []
    assert len(resample([0.0, 0.1], 12, 20)) == 240


def test_page_urls_carry_the_candles_view() -> None:
    options = CaptureOptions(symbol="ETHUSDT", interval="1m", indicators=("ema20", "rsi14"))
    assert page_url("http://h:1", "overview", options) == "http://h:1/"
    assert page_url("http://h:1", "candles", options) == "http://h:1/candles?symbol=ETHUSDT&interval=1m&ind=ema20,rsi14"
    assert page_url("http://h:1", "candles", CaptureOptions(indicators=())) == (
        "http://h:1/candles?symbol=BTCUSDT&interval=1s"
    )
    assert page_url("http://h:1", "system", options) == "http://h:1/system"


def test_gif_filter() -> None:
    assert gif_filter(10, 1280) == (
        "fps=10,scale=1280:-2:flags=lanczos,split[a][b];[a]palettegen=max_colors=128:stats_mode=diff[p];"
        "[b][p]paletteuse=dither=bayer:bayer_scale=4:diff_mode=rectangle"
    )


def test_find_chromium_honours_an_explicit_path(tmp_path: Path) -> None:
    assert find_chromium(str(tmp_path / "nope")) is None
    browser = tmp_path / "chrome"
    browser.write_text("")
    browser.chmod(0o755)
    assert find_chromium(str(browser)) == str(browser)
    assert "apt install chromium" in NO_CHROMIUM and "\n" not in NO_CHROMIUM


def test_options(tmp_path: Path) -> None:
    o = parse_args(["--out", str(tmp_path), "--pages", "candles,system", "--theme", "light", "--size", "1280x720",
                    "--seconds", "0", "--indicators", "vwap", "--symbol", "ethusdt"])  # fmt: skip
    assert (o.out, o.pages, o.themes, o.width, o.height) == (tmp_path, ("candles", "system"), ("light",), 1280, 720)
    assert (o.record, o.indicators, o.symbol) == (False, ("vwap",), "ETHUSDT")
    assert parse_args([]).themes == ("dark", "light") and parse_args([]).seconds == 20
    for bad in (["--pages", "home"], ["--size", "big"], ["--indicators", "macd"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_the_demo_readme_says_what_when_and_how(tmp_path: Path) -> None:
    shot = tmp_path / "candles-dark.png"
    shot.write_bytes(b"x" * 2048)
    capture = Capture(
        datetime(2026, 11, 30, 12, 0, tzinfo=UTC), CaptureOptions(out=tmp_path), "python -m services.capture"
    )
    capture.screenshots.append(shot)
    text = demo_readme(capture)
    assert "Captured 2026-11-30 12:00 UTC" in text
    assert "- Source: `simulator` (embedded Valkey, SQLite, started for the capture)" in text
    assert "| [candles-dark.png](candles-dark.png) | 2 KB |" in text
    assert text.endswith("```\npython -m services.capture\n```\n")

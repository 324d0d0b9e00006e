"""``python -m services.capture`` for real: a short clip of a live stack, its files checked pixel by pixel."""

from __future__ import annotations

import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.stack import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

UP, DOWN = (38, 166, 154), (239, 83, 80)  # the candlestick colours of the dark theme (#26a69a, #ef5350)


def pixels_of(image: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 12) -> int:
    return int((np.abs(image[..., :3].astype(int) - np.array(rgb)).max(axis=-1) <= tolerance).sum())


def test_the_capture_writes_screenshots_a_gif_and_an_mp4(tmp_path: Path) -> None:
    import imageio

    out = tmp_path / "demo"
    args = ["--out", str(out), "--pages", "overview,candles", "--theme", "dark", "--seconds", "4"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDLES_")} | {"PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "services.capture", *args], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=400)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "[capture] recording the candles page: 4/4 s" in res.stderr  # progress on the terminal

    for name in ("overview-dark.png", "candles-dark.png"):
        image = np.asarray(Image.open(out / name).convert("RGB"))
        assert image.shape == (900, 1440, 3), name
        assert image.std() > 10, f"{name} looks blank"
    candles = np.asarray(Image.open(out / "candles-dark.png").convert("RGB"))
    assert pixels_of(candles, UP) > 200 and pixels_of(candles, DOWN) > 200  # candlesticks are drawn

    video = imageio.get_reader(out / "candles-live.mp4", "ffmpeg")
    assert video.get_meta_data()["fps"] == 12 and video.get_meta_data()["size"] == (1280, 800)
    frames = [np.asarray(f) for f in video]
    assert len(frames) == 48
    changed = [int((np.abs(b.astype(int) - a.astype(int)).max(axis=-1) > 40).sum()) for a, b in pairwise(frames)]
    # the live chart repaints at least about once a second (a candle forms, the price moves): many moves in 4 s
    assert sum(n > 20 for n in changed) >= 3, changed
    gif = Image.open(out / "candles-live.gif")
    assert (gif.n_frames, gif.size) == (40, (1280, 800))
    assert (out / "candles-live.gif").stat().st_size < 8 << 20

    readme = (out / "README.md").read_text()
    for name in ("overview-dark.png", "candles-dark.png", "candles-live.mp4", "candles-live.gif"):
        assert f"[{name}]({name})" in readme
    assert "python -m services.capture --out" in readme


def test_no_browser_is_one_line() -> None:
    res = subprocess.run([sys.executable, "-m", "services.capture", "--browser", "/no/such/chrome"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "error: no Chromium or Chrome found: install Debian/Ubuntu's `chromium` package (apt install chromium), "
        "or Google Chrome, or name one with --browser PATH"
    ]

"""Helpers for the dashboard's tests: candles made by hand, typed-array decoding, the app under test."""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from backend import processes
from backend.config import INTERVALS_MS
from backend.models import Candle
from services.browser import find_chromium
from tests.stack import ROOT, clean_environ, on_a_free_port

T0 = 1_732_665_600_000  # 2024-11-27 00:00 UTC


def candle(
    i: int,
    *,
    symbol: str = "BTCUSDT",
    interval: str = "1m",
    open_: float = 100.0,
    close: float = 101.0,
    volume: float = 2.0,
    seq: int | None = None,
    closed: bool = True,
    t0: int = T0,
) -> Candle:
    step = INTERVALS_MS[interval]
    ot = t0 + i * step
    return Candle(
        symbol=symbol,
        interval=interval,
        open_time=ot,
        close_time=ot + step - 1,
        open=open_,
        high=max(open_, close) + 1,
        low=min(open_, close) - 1,
        close=close,
        volume=volume,
        quote_volume=volume * (open_ + close) / 2,
        trades=3,
        taker_buy_volume=volume / 2,
        taker_buy_quote_volume=volume * close / 2,
        closed=closed,
        seq=i + 1 if seq is None else seq,
        event_time=ot + step // 2,
        emitted_at=ot + step // 2 + 5,
    )


def series(closes: Sequence[float], **kw: Any) -> list[Candle]:
    """Candles whose opens are the previous closes (the first opens at its own close)."""
    out = []
    prev = closes[0]
    for i, c in enumerate(closes):
        out.append(candle(i, open_=prev, close=c, closed=i < len(closes) - 1, **kw))
        prev = c
    return out


def decode(value: Any) -> np.ndarray:
    """A Plotly array (plain list or ``{"dtype", "bdata"}``) as numpy."""
    if isinstance(value, dict) and "bdata" in value:
        dtype = {"f8": np.float64, "u1": np.uint8, "i4": np.int32}[value["dtype"]]
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=dtype)
    return np.asarray(value)


class StreamlitApp:
    """``streamlit run app.py`` on a free port, pointed at a relay; stopped by :meth:`stop`."""

    def __init__(
        self,
        relay_url: str,
        *,
        log_dir: Path,
        extra_env: dict[str, str] | None = None,
        address: str | None = "127.0.0.1",  # None: what .streamlit/config.toml says
    ) -> None:
        self.log_path = log_dir / "streamlit.log"
        env = clean_environ({"CANDLES_RELAY_URL": relay_url, "CANDLES_AUTOSTART": "0", **(extra_env or {})})

        def start(port: int) -> None:
            self.port = port
            self.url = f"http://127.0.0.1:{port}"
            cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                   "--server.headless", "true"]  # fmt: skip
            if address is not None:
                cmd += ["--server.address", address]
            with self.log_path.open("wb") as out:
                self.process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
            self.wait_ready()

        on_a_free_port(start)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/_stcore/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"streamlit did not start:\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        processes.stop(self.process, 15)


def browser_required() -> bool:
    """CI (``CI`` set, as CI services do) or ``CANDLES_TEST_REQUIRE_BROWSER=1``: a missing Chromium fails the tests."""
    flags = (os.environ.get("CI", ""), os.environ.get("CANDLES_TEST_REQUIRE_BROWSER", ""))
    return any(f.strip().lower() not in ("", "0", "false", "no") for f in flags)


CHROMIUM = find_chromium()


def seed_history(redis_url: str, symbols: Sequence[str], spans: dict[str, int], *, seed: int = 7) -> None:
    """Closed candles for the recent past, written the way the ingest writes them (cache + publish).

    Each symbol's walk ends at the simulator's start price, so the live candles carry on from it.
    ``spans`` maps an interval to how many candles (e.g. ``{"1s": 600, "1m": 300}``).
    """
    from backend.config import Settings
    from backend.models import now_ms
    from backend.sources.simulator import default_profile
    from tests.stack import Publisher

    rng = np.random.default_rng(seed)
    pub = Publisher(Settings(redis_url=redis_url))
    try:
        for symbol in symbols:
            start_price, annual_vol, weight = default_profile(symbol)
            for interval, n in spans.items():
                step = INTERVALS_MS[interval]
                end = now_ms() // step * step
                sd = annual_vol * (step / 1000 / (365.25 * 86_400)) ** 0.5
                # walk backwards from the start price: closes[-1] is where the simulator begins
                steps = rng.normal(0, sd, n)
                closes = start_price * np.exp(-np.concatenate(([0.0], np.cumsum(steps[::-1])[:-1]))[::-1])
                opens = np.concatenate(([closes[0] * np.exp(rng.normal(0, sd))], closes[:-1]))
                wick = np.abs(rng.normal(0, sd / 2, (2, n))) * closes
                # about the simulator's flow: some 150k USDT a second across the symbols, shared by weight
                vol = rng.lognormal(-0.2, 0.6, n) * 150_000 * weight * (step / 1000) / start_price
                batch = []
                for i in range(n):
                    t = end - (n - i) * step
                    o, c = float(opens[i]), float(closes[i])
                    batch.append(
                        Candle(symbol=symbol, interval=interval, open_time=t, close_time=t + step - 1, open=o,
                               high=max(o, c) + float(wick[0, i]), low=min(o, c) - float(wick[1, i]), close=c,
                               volume=float(vol[i]), quote_volume=float(vol[i]) * (o + c) / 2,
                               trades=int(vol[i] * 10) + 1,
                               taker_buy_volume=float(vol[i]) / 2,
                               taker_buy_quote_volume=float(vol[i]) * c / 2,
                               closed=True, seq=i + 1, event_time=t + step - 1)
                    )  # fmt: skip
                for i in range(0, n, 250):
                    pub.publish(*batch[i : i + 250])
    finally:
        pub.close()

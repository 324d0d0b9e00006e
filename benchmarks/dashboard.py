"""Dashboard benchmark: trade → browser latency, bytes per update, live sessions per process, memory.

    .venv/bin/python benchmarks/dashboard.py                  # everything (about 3 minutes)
    .venv/bin/python benchmarks/dashboard.py --sessions 1,20,100 --seconds 20 --skip-browser
    .venv/bin/python benchmarks/dashboard.py --bytes-only --seconds 20   # bytes/s per page, before and after
    .venv/bin/python benchmarks/dashboard.py --refresh 1,0.5 --sessions 1,100   # two live refresh periods

It starts the real stack (``python -m backend run``, simulator, embedded Valkey, SQLite) and
``streamlit run app.py`` on free ports, then measures:

- trade → browser: a headless Chromium shows the candles page (BTCUSDT 1s, 500 candles);
  each time the chart is redrawn with a newer trade, ``now − event_time`` of the newest trade in it
  (``event_time`` is the trade's own timestamp; the simulator stamps trades at most one 100 ms tick
  before they enter the pipeline, so this is an upper bound). p50 / p99.
- bytes per update: what Streamlit sends to a session for one live update of that page.
- bytes per second per open page (overview, candles 1s/500 bars, candles 1m with EMA 20 and VWAP), what a
  Chromium tab receives on Streamlit's WebSocket, before (``CANDLES_UI_DELTA=0``: the whole figure every
  refresh) and after (patches), two Streamlit servers on the same stack, in one run (``--bytes-only``: just that).
- sessions: N headless clients that speak Streamlit's WebSocket protocol like a browser tab (open
  the page, then ask for the live fragment on its timer, as the frontend does); a session "keeps
  refreshing" when it completes at least 0.9 updates per second.
- memory: the Streamlit process's RSS with 1, 20 and 100 sessions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402

from backend.embedded import EmbeddedValkey  # noqa: E402
from services.browser import CHROME_FLAGS  # noqa: E402
from tests.dashboard_fixtures import CHROMIUM, StreamlitApp, seed_history  # noqa: E402
from tests.stack import start_stack  # noqa: E402

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT")
PAGE = "candles"
QUERY = "symbol=BTCUSDT&interval=1s&bars=500"
FRAGMENT_DONE = ForwardMsg.ScriptFinishedStatus.Value("FINISHED_FRAGMENT_RUN_SUCCESSFULLY")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


# ---------------------------------------------------------------- headless sessions


@dataclass
class Session:
    """One browser tab's worth of Streamlit protocol: open the page, rerun the live fragment on its timer."""

    url: str
    done_at: list[float] = field(default_factory=list)  # fragment runs completed
    update_bytes: list[int] = field(default_factory=list)
    bytes_in: int = 0
    error: str | None = None

    def rerun(self, fragment_id: str = "") -> bytes:
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = QUERY
        cs.page_name = PAGE
        if fragment_id:
            cs.fragment_id = fragment_id
            cs.is_auto_rerun = True
        cs.context_info.timezone = "UTC"
        return msg.SerializeToString()

    async def run(self, until: float) -> None:
        from websockets.asyncio.client import connect
        from websockets.typing import Subprotocol

        ws_url = self.url.replace("http://", "ws://") + "/_stcore/stream"
        timer: asyncio.Task[None] | None = None
        try:
            async with connect(ws_url, subprotocols=[Subprotocol("streamlit")], max_size=None) as ws:
                await ws.send(self.rerun())
                since_update = 0
                while time.monotonic() < until:
                    try:
                        raw = await asyncio.wait_for(ws.recv(), timeout=max(0.05, until - time.monotonic()))
                    except TimeoutError:
                        break
                    data = raw if isinstance(raw, bytes) else raw.encode()
                    self.bytes_in += len(data)
                    since_update += len(data)
                    msg = ForwardMsg.FromString(data)
                    kind = msg.WhichOneof("type")
                    if kind == "auto_rerun" and timer is None:
                        timer = asyncio.create_task(self._tick(ws, msg.auto_rerun.fragment_id, msg.auto_rerun.interval))
                    elif kind == "script_finished" and msg.script_finished == FRAGMENT_DONE:
                        self.done_at.append(time.monotonic())
                        self.update_bytes.append(since_update)
                        since_update = 0
        except Exception as exc:  # a benchmark reports, it does not crash
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            if timer is not None:
                timer.cancel()

    async def _tick(self, ws: object, fragment_id: str, interval: float) -> None:
        """Like the frontend: ask for the fragment every ``interval`` seconds, whatever the server does."""
        while True:
            await asyncio.sleep(interval)
            await ws.send(self.rerun(fragment_id))  # type: ignore[attr-defined]

    def rate(self, start: float, end: float) -> float:
        return sum(1 for t in self.done_at if start <= t <= end) / max(1e-9, end - start)


async def run_sessions(url: str, n: int, seconds: float, warmup: float) -> list[Session]:
    sessions = [Session(url) for _ in range(n)]
    until = time.monotonic() + warmup + seconds
    tasks = []
    for s in sessions:  # open them over a second, like people arriving
        tasks.append(asyncio.create_task(s.run(until)))
        await asyncio.sleep(1.0 / max(1, n))
    await asyncio.gather(*tasks)
    return sessions


@dataclass
class Level:
    n: int
    refreshing: int
    rate_p50: float
    rate_min: float
    bytes_per_update: float
    rss_mb: float
    errors: int
    refresh_s: float
    cpu_cores: float  # the Streamlit process's CPU time per second of the window


def measure_level(app: StreamlitApp, n: int, seconds: float, warmup: float, refresh: float) -> Level:
    rss: list[float] = []
    cpu: list[tuple[float, float]] = []  # (monotonic, CPU seconds) at the window's start and end

    async def sample_rss() -> None:
        await asyncio.sleep(warmup + 1.0)
        cpu.append((time.monotonic(), cpu_seconds(app.process.pid)))
        await asyncio.sleep(seconds * 0.6 - 1.0)
        rss.append(app.rss_kb() / 1024)
        await asyncio.sleep(seconds * 0.4 - 0.5)
        cpu.append((time.monotonic(), cpu_seconds(app.process.pid)))

    async def both() -> list[Session]:
        sampler = asyncio.create_task(sample_rss())
        out = await run_sessions(app.url, n, seconds, warmup)
        await sampler
        return out

    t0 = time.monotonic()
    sessions = asyncio.run(both())
    start, end = t0 + warmup + 1.0, t0 + warmup + seconds
    rates = [s.rate(start, end) for s in sessions]
    sizes = [b for s in sessions for b in s.update_bytes[2:]]
    return Level(
        n=n,
        refreshing=sum(1 for r in rates if r >= 0.9),
        rate_p50=statistics.median(rates),
        rate_min=min(rates),
        bytes_per_update=statistics.median(sizes) if sizes else float("nan"),
        rss_mb=rss[0] if rss else app.rss_kb() / 1024,
        errors=sum(1 for s in sessions if s.error),
        refresh_s=refresh,
        cpu_cores=(cpu[1][1] - cpu[0][1]) / (cpu[1][0] - cpu[0][0]) if len(cpu) == 2 else float("nan"),
    )


def measure_refresh(app: StreamlitApp, refresh: float, levels: list[int], args: argparse.Namespace) -> list[Level]:
    """Latency (alone and with ``--loaded`` other sessions) and the session levels, on one app."""
    if not args.skip_browser:
        print(f"trade → browser latency: one Chromium tab on /{PAGE}?{QUERY}, {args.seconds:g} s …", flush=True)
        b = browser_latency(app, args.seconds)
        per_draw = sum(b.frame_bytes) / max(1, b.draws)
        print(
            f"  draws {b.draws}, samples {len(b.latencies_ms)}: p50 {pct(b.latencies_ms, 50):.0f} ms, "
            f"p99 {pct(b.latencies_ms, 99):.0f} ms, max {max(b.latencies_ms, default=float('nan')):.0f} ms; "
            f"WebSocket bytes to the browser per update {per_draw / 1024:.1f} KB",
            flush=True,
        )
    if not args.skip_browser and args.loaded:
        print(f"trade → browser latency with {args.loaded} other live sessions, {args.seconds:g} s …", flush=True)
        background = threading.Thread(
            target=lambda: asyncio.run(run_sessions(app.url, args.loaded, args.seconds + 10, 0)), daemon=True
        )
        background.start()
        time.sleep(3)
        b = browser_latency(app, args.seconds)
        background.join()
        print(
            f"  draws {b.draws}, samples {len(b.latencies_ms)}: p50 {pct(b.latencies_ms, 50):.0f} ms, "
            f"p99 {pct(b.latencies_ms, 99):.0f} ms, max {max(b.latencies_ms, default=float('nan')):.0f} ms",
            flush=True,
        )
        time.sleep(3)
    results: list[Level] = []
    for n in levels:
        print(f"{n} headless session(s) for {args.seconds:g} s …", flush=True)
        level = measure_level(app, n, args.seconds, args.warmup, refresh)
        results.append(level)
        print(
            f"  refreshing ≥0.9/s: {level.refreshing}/{n}; updates/s per session p50 {level.rate_p50:.2f}, "
            f"min {level.rate_min:.2f}; bytes/update {level.bytes_per_update / 1024:.1f} KB; "
            f"Streamlit CPU {level.cpu_cores:.2f} cores; RSS {level.rss_mb:.0f} MB; errors {level.errors}",
            flush=True,
        )
        time.sleep(3)  # sessions released
    return results


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- a real browser


@dataclass
class BrowserResult:
    latencies_ms: list[float]
    frame_bytes: list[int]
    draws: int


LATENCY_JS = """() => {
  window.__lat = []; window.__draws = 0; window.__last = null;
  document.addEventListener('candles:drawn', (e) => {
    window.__draws += 1;
    const t = e.detail && e.detail.event_time;
    if (t && t !== window.__last) { window.__last = t; window.__lat.push(Date.now() - t); }
  }, true);
}"""


def browser_latency(app: StreamlitApp, seconds: float) -> BrowserResult:
    from playwright.sync_api import sync_playwright

    frames: list[tuple[float, int]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROME_FLAGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})

        def on_ws(ws: object) -> None:
            ws.on("framereceived", lambda payload: frames.append((time.monotonic(), len(payload))))  # type: ignore[attr-defined]

        page.on("websocket", on_ws)
        page.goto(f"{app.url}/{PAGE}?{QUERY}")
        page.wait_for_selector(".cs-plot.js-plotly-plot", timeout=60_000)
        page.wait_for_timeout(2000)
        page.evaluate(LATENCY_JS)
        start = time.monotonic()
        page.wait_for_timeout(seconds * 1000)
        end = time.monotonic()
        lat = page.evaluate("() => window.__lat")
        draws = page.evaluate("() => window.__draws")
        browser.close()
    window = [b for t, b in frames if start <= t <= end]
    return BrowserResult([float(x) for x in lat], window, int(draws))


# ---------------------------------------------------------------- bytes per second per open page, before and after

BYTES_PAGES = (
    ("overview", "overview", "", ".cs-tile"),
    ("candles BTCUSDT 1s, 500 bars", "candles", "symbol=BTCUSDT&interval=1s&bars=500", ".cs-plot.js-plotly-plot"),
    ("candles ETHUSDT 1m, 300 bars, EMA 20 + VWAP", "candles", "symbol=ETHUSDT&interval=1m&ind=ema20,vwap",
     ".cs-plot.js-plotly-plot"),
)  # fmt: skip


def page_bytes_per_s(app: StreamlitApp, path: str, query: str, ready: str, seconds: float) -> float:
    """Bytes a Chromium tab receives on Streamlit's WebSocket per second, once the page shows data."""
    from playwright.sync_api import sync_playwright

    frames: list[tuple[float, int]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROME_FLAGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.on(
            "websocket",
            lambda ws: ws.on("framereceived", lambda payload: frames.append((time.monotonic(), len(payload)))),
        )
        page.goto(f"{app.url}/{path}" + (f"?{query}" if query else ""))
        page.wait_for_selector(ready, timeout=60_000)
        page.wait_for_timeout(3000)  # the first runs (the whole page, the whole figure) are not the steady state
        start = time.monotonic()
        page.wait_for_timeout(seconds * 1000)
        end = time.monotonic()
        browser.close()
    return sum(b for t, b in frames if start <= t <= end) / (end - start)


def bytes_before_after(stack_url: str, log_dir: Path, seconds: float) -> None:
    """The same pages on two Streamlit servers: whole figures every refresh (CANDLES_UI_DELTA=0), and patches."""
    apps = {}
    try:
        for label, delta in (("before", "0"), ("after", "1")):
            sub = log_dir / label
            sub.mkdir(exist_ok=True)
            apps[label] = StreamlitApp(stack_url, log_dir=sub, extra_env={"CANDLES_UI_DELTA": delta})
        rows = []
        for name, path, query, ready in BYTES_PAGES:
            print(f"bytes/s: {name}, {seconds:g} s each, whole figures then patches …", flush=True)
            before = page_bytes_per_s(apps["before"], path, query, ready, seconds)
            after = page_bytes_per_s(apps["after"], path, query, ready, seconds)
            rows.append((name, before, after))
            print(f"  before {before / 1024:.1f} KB/s, after {after / 1024:.1f} KB/s", flush=True)
        print()
        print("| page (one Chromium tab) | before: whole figure, KB/s | after: patches, KB/s | ratio |")
        print("|---|---:|---:|---:|")
        for name, before, after in rows:
            print(f"| {name} | {before / 1024:.1f} | {after / 1024:.1f} | {before / max(after, 1):.1f}× |")
        print()
    finally:
        for a in apps.values():
            a.stop()


# ---------------------------------------------------------------- history, so the chart has 500 candles at once


# ---------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20, help="measurement window per step (default 20)")
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--sessions", default="1,20,50,100", help="session counts to try (default 1,20,50,100)")
    ap.add_argument("--skip-browser", action="store_true")
    ap.add_argument("--history", type=int, default=600, help="seconds of 1s history seeded first (500-candle chart)")
    ap.add_argument("--loaded", type=int, default=100, help="also measure latency with this many other sessions")
    ap.add_argument("--bytes-only", action="store_true", help="only bytes per second per page, before and after")
    ap.add_argument("--refresh", default="1", help="live refresh periods to compare, s (say 1,0.5; default 1)")
    args = ap.parse_args()
    refreshes = [float(x) for x in args.refresh.split(",") if x]
    if CHROMIUM is None and not args.skip_browser:
        print("no Chromium (apt-get install -y chromium); use --skip-browser", file=sys.stderr)
        return 2
    levels = [int(x) for x in args.sessions.split(",") if x]
    tmp = Path(tempfile.mkdtemp(prefix="candles-bench-"))
    print(f"starting the stack and the app (logs in {tmp}) …", flush=True)
    valkey = EmbeddedValkey()
    seed_history(valkey.url, SYMBOLS, {"1s": args.history, "1m": 300, "1h": 30})
    stack = start_stack(
        {"CANDLES_REDIS_URL": valkey.url},
        symbols=SYMBOLS,
        data_dir=tmp,
    )
    app = None
    try:
        if not args.skip_browser:
            bytes_before_after(stack.url, tmp, args.seconds)
        if args.bytes_only:
            return 0
        results: list[Level] = []
        for refresh in refreshes:
            app = StreamlitApp(stack.url, log_dir=tmp, extra_env={"CANDLES_UI_REFRESH_S": f"{refresh:g}"})
            print(f"== live refresh every {refresh:g} s (CANDLES_UI_REFRESH_S)", flush=True)
            time.sleep(3)  # let 1s candles accumulate
            results.extend(measure_refresh(app, refresh, levels, args))
            app.stop()
            app = None
        print()
        print(
            "| refresh | sessions | refreshing every second | updates/s per session (p50 / min) | KB per update "
            "| Streamlit CPU, cores | RSS MB |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for lv in results:
            print(
                f"| {lv.refresh_s:g} s | {lv.n} | {lv.refreshing} | {lv.rate_p50:.2f} / {lv.rate_min:.2f} | "
                f"{lv.bytes_per_update / 1024:.1f} | {lv.cpu_cores:.2f} | {lv.rss_mb:.0f} |"
            )
        for refresh in refreshes:
            by_n = {lv.n: lv for lv in results if lv.refresh_s == refresh}
            if 1 in by_n and len(by_n) > 1:
                top = max(by_n)
                growth = (by_n[top].rss_mb - by_n[1].rss_mb) / (top - 1)
                print(f"memory growth per extra session (1 → {top}), refresh {refresh:g} s: {growth:.2f} MB")
    finally:
        if app is not None:
            app.stop()
        with contextlib.suppress(Exception):
            stack.stop()
        valkey.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

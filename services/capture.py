"""``python -m services.capture`` (``make demo``): screenshots of every page and a recording, in one command.

Starts the stack on embedded defaults (or uses a running relay with
``--relay-url``) and the dashboard, drives a lively market (the simulator, or a
replay with ``--source replay:PATH --speed N``), opens the pages in headless
Chromium (Playwright with the system's Chromium or Chrome) and writes to
``demo/``: a PNG per page and theme, once its charts have data; a recording of
the candles page as an MP4 and a GIF; and ``demo/README.md`` saying what was
captured, when, from which source and how to make it again.

The recording is Chromium's own screencast (the DevTools ``Page.startScreencast``
frames, JPEG with timestamps), resampled to a fixed frame rate and encoded by
the ffmpeg of the ``imageio-ffmpeg`` wheel: no system ffmpeg, and no
Playwright download (its ``record_video`` needs Playwright's own ffmpeg build).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from backend import processes
from services.browser import CHROME_FLAGS, find_chromium

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("overview", "candles", "alerts", "system")
THEMES = ("dark", "light")
CHART = ".cs-plot.js-plotly-plot"
NO_CHROMIUM = (
    "error: no Chromium or Chrome found: install Debian/Ubuntu's `chromium` package (apt install chromium), "
    "or Google Chrome, or name one with --browser PATH"
)


@dataclass(frozen=True)
class CaptureOptions:
    out: Path = ROOT / "demo"
    relay_url: str | None = None
    source: str = "simulator"
    speed: float = 1.0
    symbol: str = "BTCUSDT"
    interval: str = "1s"
    indicators: tuple[str, ...] = ("ema20", "bb20")
    pages: tuple[str, ...] = PAGES
    themes: tuple[str, ...] = THEMES
    width: int = 1440
    height: int = 900
    seconds: float = 20.0
    fps: int = 12
    gif_width: int = 1280
    gif_fps: int = 10
    record: bool = True
    browser: str | None = None


@dataclass
class Capture:
    """What a run wrote, for ``demo/README.md``."""

    started_at: datetime
    options: CaptureOptions
    command: str
    screenshots: list[Path] = field(default_factory=list)
    clips: list[Path] = field(default_factory=list)
    frames: int = 0
    alert: str | None = None


# ---------------------------------------------------------------- pure parts


def page_url(app_url: str, name: str, options: CaptureOptions) -> str:
    """The dashboard URL of a page, the candles page with the chosen symbol, interval and indicators."""
    if name == "overview":
        return app_url + "/"
    if name == "candles":
        ind = ",".join(options.indicators)
        return f"{app_url}/candles?symbol={options.symbol}&interval={options.interval}" + (f"&ind={ind}" if ind else "")
    return f"{app_url}/{name}"


def resample(stamps: Sequence[float], fps: int, seconds: float) -> list[int]:
    """For each of ``fps × seconds`` ticks, the index of the newest frame shown at that time.

    The screencast sends a frame only when the page repaints, so a still
    moment has no frames: the previous one stays on screen, as it did.
    """
    if not stamps:
        return []
    start = stamps[0]
    ticks = round(fps * seconds)
    out, j = [], 0
    for k in range(ticks):
        at = start + k / fps
        while j + 1 < len(stamps) and stamps[j + 1] <= at:
            j += 1
        out.append(j)
    return out


def gif_filter(fps: int, width: int) -> str:
    """ffmpeg filter for a small, clean GIF: one palette for the clip, only changed rectangles re-dithered."""
    return (
        f"fps={fps},scale={width}:-2:flags=lanczos,split[a][b];"
        "[a]palettegen=max_colors=128:stats_mode=diff[p];"
        "[b][p]paletteuse=dither=bayer:bayer_scale=4:diff_mode=rectangle"
    )


def demo_readme(capture: Capture) -> str:
    """``demo/README.md``: what was captured, when, from which source, and the command that does it again."""
    o = capture.options
    lines = [
        "# Candlestream demo capture",
        "",
        f"Captured {capture.started_at:%Y-%m-%d %H:%M UTC} by `python -m services.capture` "
        f"on {platform.system()} {platform.machine()}.",
        "",
        f"- Source: `{o.source}`"
        + (f" at speed {o.speed:g}" if o.source.startswith("replay:") else "")
        + (f" (relay {o.relay_url})" if o.relay_url else " (embedded Valkey, SQLite, started for the capture)"),
        f"- Candles page: {o.symbol} {o.interval}"
        + (f", indicators {', '.join(o.indicators)}" if o.indicators else ""),
        f"- Screenshots: {o.width}×{o.height}, themes {', '.join(o.themes)}",
    ]
    if capture.alert:
        lines.append(f"- Alert rule created for the shots: {capture.alert}")
    if capture.clips:
        lines.append(
            f"- Recording: {o.seconds:g} s of the candles page, MP4 at {o.fps} fps ({capture.frames} frames), "
            f"GIF at {o.gif_fps} fps, {o.gif_width} px wide"
        )
    lines += ["", "| file | size |", "|---|---:|"]
    for path in [*capture.screenshots, *capture.clips]:
        lines.append(f"| [{path.name}]({path.name}) | {path.stat().st_size / 1024:,.0f} KB |")
    lines += ["", "Made with:", "", "```", capture.command, "```", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- the stack


def say(message: str) -> None:
    print(f"[capture] {message}", file=sys.stderr, flush=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check: Any, what: str, process: subprocess.Popen[bytes] | None, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited; see {log}")
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            if check():
                return
        time.sleep(0.3)
    raise RuntimeError(f"{what}: not ready after {timeout:.0f} s; see {log}")


@contextlib.contextmanager
def running_stack(options: CaptureOptions, workdir: Path) -> Iterator[tuple[str, str]]:
    """``(relay_url, app_url)``: the backend (unless ``--relay-url``) and the dashboard, stopped on exit."""
    started: list[tuple[subprocess.Popen[bytes], bool]] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDLES_")}
    try:
        relay_url = options.relay_url
        if relay_url is None:
            port = _free_port()
            relay_url = f"http://127.0.0.1:{port}"
            backend_env = env | {
                "CANDLES_SOURCE": options.source,
                "CANDLES_SPEED": str(options.speed),
                "CANDLES_API_PORT": str(port),
                "CANDLES_DATA_DIR": str(workdir / "data"),
            }
            log = workdir / "backend.log"
            say(f"starting the backend ({options.source}) on {relay_url}")
            with log.open("wb") as out:
                backend = subprocess.Popen(
                    [sys.executable, "-m", "backend", "run"], cwd=ROOT, env=backend_env, stdout=out,
                    stderr=subprocess.STDOUT, **processes.group_options(True),
                )  # fmt: skip
            started.append((backend, True))
            _wait(lambda: httpx.get(relay_url + "/health", timeout=2).status_code == 200, "backend", backend, log)
        _wait(lambda: httpx.get(relay_url + "/api/v1/symbols", timeout=2).json()["symbols"], "symbols", None, ROOT)
        app_port = _free_port()
        app_url = f"http://127.0.0.1:{app_port}"
        log = workdir / "streamlit.log"
        say(f"starting the dashboard on {app_url}")
        app_env = env | {"CANDLES_RELAY_URL": relay_url, "CANDLES_AUTOSTART": "0"}
        with log.open("wb") as out:
            app = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(app_port),
                 "--server.headless", "true"],
                cwd=ROOT, env=app_env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        started.append((app, False))
        _wait(lambda: httpx.get(app_url + "/_stcore/health", timeout=2).status_code == 200, "dashboard", app, log)
        yield relay_url, app_url
    finally:
        for process, group in reversed(started):
            processes.stop(process, 15, own_group=group)
            if group:
                processes.kill_group(process)


def arm_demo_alert(relay_url: str, options: CaptureOptions) -> str | None:
    """A rule that fires within seconds on a live market (close crosses its EMA 20), for the alerts shots."""
    from services.client import RelayClient, RelayError

    client = RelayClient(relay_url)
    try:
        rule = client.create_rule(
            {"symbol": options.symbol, "interval": options.interval, "kind": "cross", "threshold": "ema20",
             "frequency": "every", "cooldown_s": 5, "note": "demo: close crosses EMA 20"}
        )  # fmt: skip
        say(f"alert rule {rule.id}: {options.symbol} {options.interval} close crosses EMA 20; waiting for it to fire")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if client.alert_events(rule_id=rule.id, limit=1).items:
                return f"{options.symbol} {options.interval}: close crosses EMA 20 (every 5 s at most)"
            time.sleep(0.5)
        say("the demo alert did not fire within 60 s; the alerts shots show it armed")
        return f"{options.symbol} {options.interval}: close crosses EMA 20 (armed, not fired yet)"
    except RelayError as exc:
        say(f"could not create the demo alert ({exc}); the alerts page is shot without one")
        return None
    finally:
        client.close()


# ---------------------------------------------------------------- the browser

READY_JS = {
    "overview": "() => { const p = [...document.querySelectorAll('[data-testid=tile-price]')];"
    " return p.length > 0 && p.every(e => e.textContent.trim() !== '—'); }",
    "candles": f"() => {{ const g = document.querySelector('{CHART}');"
    " return !!(g && g._fullData && g._fullData.length >= 2 && (g._fullData[0].x || []).length > 5); }",
    "alerts": "() => document.querySelectorAll('[data-testid=rule-state]').length > 0"
    " || document.body.innerText.includes('No alert rules')",
    "system": "() => [...document.querySelectorAll('[data-testid=stMetricLabel]')]"
    ".some(e => e.innerText.includes('Trades/s'))",
}


def shoot_pages(browser: Any, app_url: str, options: CaptureOptions, capture: Capture) -> None:
    """A PNG per page and theme, each taken once its data is on screen."""
    for theme in options.themes:
        context = browser.new_context(viewport={"width": options.width, "height": options.height}, color_scheme=theme)
        page = context.new_page()
        try:
            for name in options.pages:
                say(f"{name} page, {theme} theme")
                page.goto(page_url(app_url, name, options))
                page.wait_for_function(READY_JS[name], timeout=60_000)
                if name in ("candles", "system"):
                    page.wait_for_selector(CHART, timeout=30_000)
                page.wait_for_timeout(1500)  # let the last rerun and the chart's transition settle
                path = options.out / f"{name}-{theme}.png"
                page.screenshot(path=str(path))
                capture.screenshots.append(path)
        finally:
            context.close()


def record_candles(browser: Any, app_url: str, options: CaptureOptions, workdir: Path) -> list[tuple[float, bytes]]:
    """The candles page's screencast for ``seconds``: (timestamp, JPEG) per repaint."""
    width, height = options.gif_width, round(options.gif_width * options.height / options.width)
    context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=options.themes[0])
    page = context.new_page()
    frames: list[tuple[float, bytes]] = []
    try:
        page.goto(page_url(app_url, "candles", options))
        page.wait_for_function(READY_JS["candles"], timeout=60_000)
        page.wait_for_timeout(1000)
        cdp = context.new_cdp_session(page)

        def on_frame(event: dict[str, Any]) -> None:
            frames.append((float(event["metadata"]["timestamp"]), base64.b64decode(event["data"])))
            cdp.send("Page.screencastFrameAck", {"sessionId": event["sessionId"]})

        cdp.on("Page.screencastFrame", on_frame)
        cdp.send("Page.startScreencast", {"format": "jpeg", "quality": 90, "maxWidth": width, "maxHeight": height})
        started = time.monotonic()
        shown = -1
        while (elapsed := time.monotonic() - started) < options.seconds:
            page.wait_for_timeout(200)  # lets Playwright dispatch the frame events
            if int(elapsed) != shown:
                shown = int(elapsed)
                say(f"recording the candles page: {shown + 1}/{options.seconds:g} s ({len(frames)} frames)")
        cdp.send("Page.stopScreencast")
    finally:
        context.close()
    return frames


def encode_clips(frames: list[tuple[float, bytes]], options: CaptureOptions, capture: Capture) -> None:
    """MP4 (H.264, ``fps``) and GIF (``gif_fps``, one palette) from the screencast, with imageio-ffmpeg's ffmpeg."""
    import imageio_ffmpeg
    from PIL import Image

    order = resample([t for t, _ in frames], options.fps, options.seconds)
    if not order:
        raise RuntimeError("the screencast sent no frames")
    first = Image.open(io.BytesIO(frames[0][1]))
    size = (first.width - first.width % 2, first.height - first.height % 2)  # H.264 wants even sides
    mp4 = options.out / "candles-live.mp4"
    say(f"encoding {len(order)} frames to {mp4.name}")
    writer = imageio_ffmpeg.write_frames(
        str(mp4), size, fps=options.fps, codec="libx264", pix_fmt_out="yuv420p", quality=7, macro_block_size=2,
        output_params=["-movflags", "+faststart"],
    )  # fmt: skip
    writer.send(None)
    decoded: dict[int, bytes] = {}
    for index in order:
        if index not in decoded:
            decoded = {index: Image.open(io.BytesIO(frames[index][1])).convert("RGB").crop((0, 0, *size)).tobytes()}
        writer.send(decoded[index])
    writer.close()
    capture.frames = len(order)
    gif = options.out / "candles-live.gif"
    say(f"encoding {gif.name}")
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(mp4),
         "-vf", gif_filter(options.gif_fps, options.gif_width), "-loop", "0", str(gif)],
        check=True,
    )  # fmt: skip
    capture.clips += [mp4, gif]


# ---------------------------------------------------------------- the command


def capture(options: CaptureOptions, command: str) -> Capture:
    from playwright.sync_api import sync_playwright

    executable = find_chromium(options.browser)
    if executable is None:
        raise SystemExit(NO_CHROMIUM)
    options.out.mkdir(parents=True, exist_ok=True)
    result = Capture(datetime.now(UTC), options, command)
    with tempfile.TemporaryDirectory(prefix="candles-capture-") as tmp, running_stack(options, Path(tmp)) as urls:
        relay_url, app_url = urls
        if "alerts" in options.pages:
            result.alert = arm_demo_alert(relay_url, options)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROME_FLAGS)
            try:
                shoot_pages(browser, app_url, options, result)
                if options.record:
                    frames = record_candles(browser, app_url, options, Path(tmp))
                    encode_clips(frames, options, result)
            finally:
                browser.close()
    (options.out / "README.md").write_text(demo_readme(result))
    return result


def parse_args(argv: Sequence[str] | None = None) -> CaptureOptions:
    parser = argparse.ArgumentParser(prog="python -m services.capture", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "demo", help="output folder (default: demo/)")
    parser.add_argument("--relay-url", help="use a running relay instead of starting the stack")
    parser.add_argument("--source", default="simulator", help="simulator (default) or replay:PATH")
    parser.add_argument("--speed", type=float, default=1.0, help="replay speed (default 1)")
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument("--interval", default="1s", help="the candles page's interval (default 1s: candles close live)")
    parser.add_argument("--indicators", default="ema20,bb20", help="comma-separated, e.g. ema20,vwap,rsi14 ('' none)")
    parser.add_argument("--pages", default=",".join(PAGES), help=f"comma-separated, from {', '.join(PAGES)}")
    parser.add_argument("--theme", choices=("light", "dark", "both"), default="both")
    parser.add_argument("--size", default="1440x900", help="screenshot size WIDTHxHEIGHT (default 1440x900)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the recording (0: none)")
    parser.add_argument("--fps", type=int, default=12, help="MP4 frames per second (default 12)")
    parser.add_argument("--gif-width", type=int, default=1280)
    parser.add_argument("--gif-fps", type=int, default=10)
    parser.add_argument("--browser", help="path of a Chromium or Chrome (default: found on PATH)")
    args = parser.parse_args(argv)
    pages = tuple(p.strip() for p in args.pages.split(",") if p.strip())
    unknown = [p for p in pages if p not in PAGES]
    if unknown:
        parser.error(f"unknown page {unknown[0]!r}; choose from {', '.join(PAGES)}")
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size {args.size!r}: use WIDTHxHEIGHT, like 1440x900")
    from backend.indicators import INDICATORS

    indicators = tuple(k for k in args.indicators.split(",") if k)
    bad = [k for k in indicators if k not in INDICATORS]
    if bad:
        parser.error(f"unknown indicator {bad[0]!r}; choose from {', '.join(INDICATORS)}")
    return CaptureOptions(
        out=args.out, relay_url=args.relay_url, source=args.source, speed=args.speed, symbol=args.symbol.upper(),
        interval=args.interval, indicators=indicators, pages=pages,
        themes=THEMES if args.theme == "both" else (args.theme,), width=width, height=height,
        seconds=args.seconds, fps=args.fps, gif_width=args.gif_width, gif_fps=args.gif_fps,
        record=args.seconds > 0, browser=args.browser,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    command = "python -m services.capture " + " ".join(sys.argv[1:] if argv is None else argv)
    result = capture(options, command.strip())
    say(f"done: {len(result.screenshots)} screenshots, {len(result.clips)} clips in {options.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

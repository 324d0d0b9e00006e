"""Soak test: the whole stack under steady load for a long time; memory must stay flat, logs clean.

    .venv/bin/python benchmarks/soak.py                        # 30 minutes, 2,000 trades/s, 200 + 5 clients
    .venv/bin/python benchmarks/soak.py --minutes 10 --rate 500 --clients 50 --sessions 2

It starts ``python -m backend run`` (simulator at ``--rate`` trades/s over six symbols, embedded
Valkey, SQLite) and ``streamlit run app.py`` on free ports, connects ``--clients`` WebSocket clients
to the relay (each subscribed to one symbol's 1s and 1m candles, spread over the symbols) and
``--sessions`` dashboard sessions (headless clients speaking Streamlit's protocol like a browser tab
on the candles page, as in ``benchmarks/dashboard.py``), and keeps them all running for
``--minutes``. Every ``--sample-s`` (60) it records the RSS of every process of the stack (the
``run`` process with the relay, the ingest, the embedded Valkey, the guardian) and of Streamlit. At
the end it prints the RSS table, each process's growth from the first sample after ``--warmup-minutes``
to the last (target: under 5 %), the error lines in the logs (ERROR, CRITICAL, tracebacks), and what
the clients received. Linux only (RSS from /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.dashboard import Session  # noqa: E402
from tests.dashboard_fixtures import StreamlitApp  # noqa: E402
from tests.stack import Server, descendants, start_stack  # noqa: E402

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT")
ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|^Traceback ")
TARGET_GROWTH_PCT = 5.0
HISTORY_S = 1200


# ---------------------------------------------------------------- processes and memory (Linux /proc)


def rss_mb(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def command_name(pid: int) -> str:
    """A short name for a process of the stack: run, ingest, valkey, guardian, streamlit."""
    with contextlib.suppress(OSError):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        words = [a.decode(errors="replace") for a in argv if a]
        if any("valkey-server" in w for w in words[:1]):
            return "valkey"
        if "backend.processes" in words:
            return "guardian"
        if "streamlit" in words:
            return "streamlit"
        for name in ("ingest", "run", "api"):
            if name in words:
                return name
        return Path(words[0]).name if words else str(pid)
    return str(pid)


@dataclass
class Memory:
    names: dict[int, str] = field(default_factory=dict)
    samples: list[tuple[float, dict[int, float]]] = field(default_factory=list)  # (minute, pid → MB)

    def sample(self, minute: float, roots: list[int]) -> dict[int, float]:
        row: dict[int, float] = {}
        for root in roots:
            for pid in [root, *descendants(root)]:
                mb = rss_mb(pid)
                if mb is not None:
                    self.names.setdefault(pid, command_name(pid))
                    row[pid] = mb
        self.samples.append((minute, row))
        return row


# ---------------------------------------------------------------- WebSocket clients of the relay


@dataclass
class WsFigures:
    messages: int = 0
    candles: int = 0
    connects: int = 0
    drops: int = 0
    errors: list[str] = field(default_factory=list)


async def ws_client(url: str, symbol: str, until: float, figures: WsFigures) -> None:
    """One viewer: subscribe to a symbol's 1s and 1m candles and read until ``until`` (reconnecting)."""
    import json

    from websockets.asyncio.client import connect

    while time.monotonic() < until:
        try:
            async with connect(url, max_size=None) as ws:
                figures.connects += 1
                await ws.send(json.dumps({"op": "subscribe", "symbols": [symbol], "intervals": ["1s", "1m"]}))
                while time.monotonic() < until:
                    try:
                        raw = await asyncio.wait_for(ws.recv(), timeout=max(0.05, until - time.monotonic()))
                    except TimeoutError:
                        return
                    figures.messages += 1
                    if raw[:1] in ("[", b"["):
                        figures.candles += raw.count('"candle"') if isinstance(raw, str) else raw.count(b'"candle"')
        except Exception as exc:  # a soak reports, it does not crash
            figures.drops += 1
            if len(figures.errors) < 10:
                figures.errors.append(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(1)


# ---------------------------------------------------------------- logs


def error_lines(*paths: Path) -> list[str]:
    out: list[str] = []
    for path in paths:
        with contextlib.suppress(OSError):
            out += [
                f"{path.name}: {line}"
                for line in path.read_text(errors="replace").splitlines()
                if ERROR_LINE.search(line)
            ]
    return out


# ---------------------------------------------------------------- the run


async def soak(args: argparse.Namespace, relay_url: str, app_url: str, roots: list[int], memory: Memory) -> tuple:
    seconds = args.minutes * 60
    t0 = time.monotonic()
    until = t0 + seconds
    ws_url = relay_url.replace("http://", "ws://", 1) + "/ws"
    figures = WsFigures()
    clients = []
    for i in range(args.clients):
        clients.append(asyncio.create_task(ws_client(ws_url, SYMBOLS[i % len(SYMBOLS)], until, figures)))
        if i % 50 == 49:
            await asyncio.sleep(0.2)
    sessions = [Session(app_url) for _ in range(args.sessions)]
    runs = [asyncio.create_task(s.run(until)) for s in sessions]
    while True:
        minute = (time.monotonic() - t0) / 60
        row = memory.sample(minute, roots)
        total = sum(row.values())
        print(
            f"  {minute:5.1f} min: RSS {total:.0f} MB ("
            + ", ".join(f"{memory.names[p]} {mb:.0f}" for p, mb in sorted(row.items()))
            + f"); WS messages {figures.messages:,}, drops {figures.drops}",
            flush=True,
        )
        if time.monotonic() >= until - 1:
            break
        await asyncio.sleep(min(args.sample_s, max(0.0, until - time.monotonic() - 0.5)))
    await asyncio.gather(*clients, *runs)
    return figures, sessions


def report(
    args: argparse.Namespace, memory: Memory, figures: WsFigures, sessions: list[Session], logs: list[Path], stats: dict
) -> None:
    print()
    print("| process | " + " | ".join(f"{m:.1f} min" for m, _ in memory.samples) + " | growth after warm-up |")
    print("|---|" + "---:|" * (len(memory.samples) + 1))
    after = [(m, row) for m, row in memory.samples if m >= args.warmup_minutes - 0.01]
    worst = 0.0
    for pid, name in memory.names.items():
        cells = [f"{row[pid]:.0f}" if pid in row else "" for _, row in memory.samples]
        series = [row[pid] for _, row in after if pid in row]
        growth = (series[-1] - series[0]) / series[0] * 100 if len(series) >= 2 and series[0] else float("nan")
        worst = max(worst, growth) if growth == growth else worst
        mb = series[-1] - series[0] if len(series) >= 2 else float("nan")
        print(f"| {name} ({pid}) | " + " | ".join(cells) + f" | {growth:+.1f} % ({mb:+.1f} MB) |")
    errors = error_lines(*logs)
    updates = [len(s.done_at) / max(1e-9, args.minutes * 60) for s in sessions]
    print()
    print(
        f"largest growth after {args.warmup_minutes:g} min of warm-up: {worst:+.1f} % "
        f"(target under {TARGET_GROWTH_PCT:g} %)"
    )
    print(f"error lines in the logs: {len(errors)}")
    for line in errors[:20]:
        print("  " + line)
    print(
        f"WebSocket clients: {args.clients}, connects {figures.connects}, drops {figures.drops}, "
        f"messages {figures.messages:,} ({figures.messages / (args.minutes * 60):,.0f}/s), candles {figures.candles:,}"
    )
    for e in figures.errors:
        print("  " + e)
    print(
        f"dashboard sessions: {len(sessions)}, updates/s each "
        + ", ".join(f"{u:.2f}" for u in updates)
        + f"; errors {[s.error for s in sessions if s.error]}"
    )
    ingest = stats.get("ingest") or {}
    keys = ("trades_in", "trades_per_s", "candles_published", "late_trades", "db_ok", "db_pending", "db_written")
    print("ingest: " + ", ".join(f"{k} {ingest[k]}" for k in keys if k in ingest))


def _trades_in(stack: Server) -> int:
    """The ingest's trade count once the simulator has played its history and gone live."""
    stack.wait_until(lambda: (stack.get("/api/v1/stats").json()["ingest"] or {}).get("live") is True, 120, "live")
    return stack.get("/api/v1/stats").json()["ingest"]["trades_in"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rate", type=float, default=2000, help="simulator trades per second (default 2000)")
    ap.add_argument("--clients", type=int, default=200, help="WebSocket clients of the relay (default 200)")
    ap.add_argument("--sessions", type=int, default=5, help="dashboard sessions (default 5)")
    ap.add_argument("--warmup-minutes", type=float, default=2, help="growth is measured after this (default 2)")
    ap.add_argument("--sample-s", type=float, default=60, help="RSS sampling period (default 60 s)")
    args = ap.parse_args()
    if not Path("/proc/self/status").exists():
        print("the soak test reads RSS from /proc: Linux only", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="candles-soak-"))
    print(
        f"soak: {args.minutes:g} min, {args.rate:g} trades/s, {args.clients} WebSocket clients, "
        f"{args.sessions} dashboard sessions (logs in {tmp})",
        flush=True,
    )
    # 20 minutes of history: more than the cache keeps of the 1s streams (recent_cap, 1,000), so Valkey starts full
    # and the growth after warm-up is growth, not the cache filling up once
    stack = start_stack(
        {"CANDLES_SIM_RATE": str(args.rate), "CANDLES_SIM_HISTORY_S": str(HISTORY_S)}, symbols=SYMBOLS, data_dir=tmp
    )
    app = None
    try:
        app = StreamlitApp(stack.url, log_dir=tmp)
        memory = Memory()
        before, started = _trades_in(stack), time.monotonic()
        figures, sessions = asyncio.run(soak(args, stack.url, app.url, [stack.process.pid, app.process.pid], memory))
        stats = stack.get("/api/v1/stats").json()
        realised = ((stats.get("ingest") or {}).get("trades_in", 0) - before) / (time.monotonic() - started)
        print(f"trades/s over the run: {realised:,.0f} (the simulator's --rate: {args.rate:g})")
        report(args, memory, figures, sessions, [stack.log_path, app.log_path], stats)
    finally:
        if app is not None:
            app.stop()
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

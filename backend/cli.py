"""Command line: ingest, api, run (both), aggregate (offline trades → candles)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from backend.config import Settings

log = logging.getLogger("backend")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--redis-url", help="Redis URL (default: start an embedded Valkey)")
    p.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite under ./data/)")
    p.add_argument("--symbols", help="comma-separated symbols, e.g. BTCUSDT,ETHUSDT")
    p.add_argument("--intervals", help="comma-separated intervals, e.g. 1s,1m,5m")
    p.add_argument("--log-level", default=None)


def _ingest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", help="simulator | replay:PATH (default: simulator)")
    p.add_argument("--speed", type=float, help="replay speed: 1 = recorded timing, 0 = as fast as possible")
    p.add_argument("--seed", type=int, help="simulator seed")
    p.add_argument(
        "--history", dest="sim_history_s", type=float, help="seconds of recent past the simulator starts with (7200)"
    )
    p.add_argument("--emit-ms", type=int, help="forming-candle coalescing period (default 100)")
    p.add_argument("--format", dest="fmt", help="replay file format (default: detected)")


def _api_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", dest="api_host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", dest="api_port", type=int, help="port (default 8000)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m backend", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ingest = sub.add_parser("ingest", help="run source → aggregator → Redis + SQL until Ctrl-C")
    _common(ingest)
    _ingest_args(ingest)
    api = sub.add_parser("api", help="run the relay (WebSocket fan-out + REST)")
    _common(api)
    _api_args(api)
    run = sub.add_parser("run", help="ingest and relay together (embedded defaults when unconfigured)")
    _common(run)
    _ingest_args(run)
    _api_args(run)
    agg = sub.add_parser("aggregate", help="turn a trade file into candles offline")
    agg.add_argument("path", type=Path)
    agg.add_argument("--intervals", default="1m", help="comma-separated intervals (default 1m)")
    agg.add_argument("--out", type=Path, required=True, help="output .csv (header row) or .jsonl")
    agg.add_argument("--format", dest="fmt", help="input format (default: detected from the content)")
    agg.add_argument("--symbol", help="symbol for formats whose rows do not name one")
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    names = ("redis_url", "database_url", "symbols", "intervals", "source", "speed", "seed", "emit_ms", "sim_history_s")
    overrides = {n: getattr(args, n, None) for n in (*names, "api_host", "api_port", "log_level")}
    return Settings.from_env(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args) if args.command != "aggregate" else Settings()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(args, "log_level", None) or settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "aggregate":
        from backend.offline import aggregate_command

        return aggregate_command(args.path, args.intervals, args.out, fmt=args.fmt, symbol=args.symbol)
    if args.command == "ingest":
        return run_ingest(settings, fmt=args.fmt)
    if args.command == "api":
        return run_api(settings)
    return run_both(settings, fmt=args.fmt)


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: object) -> None:
        log.info("signal %d: shutting down", signum)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _redis_url(settings: Settings) -> tuple[str, object | None]:
    if settings.redis_url:
        return settings.redis_url, None
    from backend.embedded import EmbeddedValkey

    server = EmbeddedValkey()
    return server.url, server


def run_ingest(settings: Settings, *, fmt: str | None = None) -> int:
    import redis

    from backend.ingest import IngestService
    from backend.sources import open_source
    from backend.store import make_engine

    try:
        source = open_source(
            settings.source,
            symbols=settings.symbols,
            speed=settings.speed,
            seed=settings.seed,
            fmt=fmt,
            history_s=settings.sim_history_s,
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    url, server = _redis_url(settings)
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)  # a hung Redis must not hang ingest
    engine = make_engine(settings.effective_database_url())
    service = IngestService(settings, source, client, engine)
    stop = threading.Event()
    _stop_on_signals(stop)
    log.info("ingest: %s → Redis %s, SQL %s", settings.source, url, engine.url.render_as_string())
    try:
        service.run(stop)
    finally:
        service.close()
        if server is not None:
            server.stop()  # type: ignore[attr-defined]
    return 0


def run_api(settings: Settings) -> int:
    from dataclasses import replace

    from backend.relay.server import serve

    url, server = _redis_url(settings)
    try:
        serve(replace(settings, redis_url=url))  # keeps the flags (--port, --host) with an embedded Valkey too
    finally:
        if server is not None:
            server.stop()  # type: ignore[attr-defined]
    return 0


def run_both(settings: Settings, *, fmt: str | None = None) -> int:
    """One machine: embedded Valkey when unconfigured, ingest as a child process, relay here."""
    from dataclasses import replace

    from backend.relay.server import serve

    url, server = _redis_url(settings)
    env = dict(os.environ, CANDLES_REDIS_URL=url)
    cmd = [sys.executable, "-m", "backend", "ingest", "--source", settings.source, "--speed", str(settings.speed)]
    cmd += ["--intervals", ",".join(settings.intervals)]
    if settings.symbols:
        cmd += ["--symbols", ",".join(settings.symbols)]
    cmd += ["--emit-ms", str(settings.emit_ms), "--database-url", settings.effective_database_url()]
    cmd += ["--history", str(settings.sim_history_s)]
    if settings.seed is not None:
        cmd += ["--seed", str(settings.seed)]
    if fmt:
        cmd += ["--format", fmt]
    child = subprocess.Popen(cmd, env=env)
    try:
        serve(replace(settings, redis_url=url))
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
        if server is not None:
            server.stop()  # type: ignore[attr-defined]
    return 0

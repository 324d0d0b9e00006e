"""Command line: ingest, api, run (both), aggregate (offline trades → candles), db (schema migrations).

The settings' flags are derived from :class:`backend.config.Settings` (each field
tagged with the commands it belongs to); this module only wires the commands.
``aggregate`` reads three settings (log level, read limits): when none is set (nor a ``.env``), it is
parsed on its own first and runs with their defaults without importing the settings (pydantic is about
0.15 s of a process's start, a fifth of a million-trade file's whole run); anything it does not parse
cleanly goes to the full parser, which answers as it always has.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from backend.logs import configure_logging

if TYPE_CHECKING:  # the other commands' modules are imported where they run: ``aggregate`` needs none of them
    from backend.config import Settings
    from backend.embedded import RedisTarget

log = logging.getLogger("backend")

COMMANDS = {
    "ingest": "run source → aggregator → Redis + SQL until Ctrl-C",
    "api": "run the relay (WebSocket fan-out + REST)",
    "run": "ingest and relay together (embedded defaults when unconfigured)",
    "db": "upgrade the database schema to the newest revision (every process also does on start), or show it",
}


AGGREGATE_LOG_LEVEL = "INFO"  # Settings().log_level, what the fast path uses (tests/unit/test_config.py)
# the settings ``aggregate`` reads: when none is set (nor a ./.env file), their defaults apply without importing them
AGGREGATE_SETTINGS = ("CANDLES_LOG_LEVEL", "CANDLES_READ_MAX_RATIO", "CANDLES_READ_MAX_BYTES")


def add_aggregate_arguments(agg: argparse.ArgumentParser) -> None:
    agg.add_argument("path", type=Path)
    agg.add_argument("--intervals", default="1m", help="comma-separated intervals (default 1m)")
    agg.add_argument("--out", type=Path, required=True, help="output .csv (header row) or .jsonl")
    agg.add_argument("--format", dest="fmt", help="input format (default: detected from the content)")
    agg.add_argument("--symbol", help="symbol for formats whose rows do not name one")


class _NotClean(Exception):
    """The aggregate arguments did not parse cleanly: the full parser is to answer."""


class _AggregateParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _NotClean(message)


def aggregate_args(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> argparse.Namespace | None:
    """``aggregate …``'s arguments when they parse cleanly and no setting of its own is set, else None (help, an
    error, a setting: the full parser and the settings answer)."""
    if list(argv[:1]) != ["aggregate"]:
        return None
    if any(environ.get(name) for name in AGGREGATE_SETTINGS) or Path(".env").exists():
        return None
    parser = _AggregateParser(prog="python -m backend aggregate", add_help=False)
    add_aggregate_arguments(parser)
    try:
        args, extra = parser.parse_known_args(argv[1:])
    except _NotClean:
        return None
    return None if extra else args


def build_parser() -> argparse.ArgumentParser:
    from backend.config import Settings
    from backend.envsettings import add_flags

    parser = argparse.ArgumentParser(prog="python -m backend", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        add_flags(p, Settings, name)
        if name in {"ingest", "run"}:
            p.add_argument("--format", dest="fmt", help="replay file format (default: detected)")
        if name == "db":
            p.add_argument("action", choices=("upgrade", "current"), help="upgrade to the newest revision, or show it")
    feeds = sub.add_parser("feeds", help="list the exchanges usable as live sources, or one exchange's symbols")
    feeds.add_argument("--exchange", help="a ccxt id: list its symbols (needs the exchange's API)")
    add_aggregate_arguments(sub.add_parser("aggregate", help="turn a trade file into candles offline"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    fast = aggregate_args(argv)
    if fast is not None:
        return run_aggregate(fast)
    from backend.config import Settings
    from backend.envsettings import flag_values

    parser = build_parser()
    args = parser.parse_args(argv)
    # aggregate and feeds have no flags of their own: CANDLES_READ_MAX_RATIO, CANDLES_EXCHANGE_URLS, … apply
    flags = {} if args.command in ("aggregate", "feeds") else flag_values(args, Settings)
    try:
        settings = Settings.from_env(**flags)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "aggregate":
        return run_aggregate(args, settings.log_level, (settings.read_max_ratio, settings.read_max_bytes))
    configure_logging(settings.log_level)
    if args.command == "feeds":
        from backend.sources.feeds import feeds_command

        return feeds_command(args.exchange, dict(settings.exchange_urls))
    if args.command == "ingest":
        return run_ingest(settings, fmt=args.fmt)
    if args.command == "api":
        return run_api(settings)
    if args.command == "db":
        return run_db(settings, args.action)
    return run_both(settings, fmt=args.fmt)


def run_aggregate(
    args: argparse.Namespace, log_level: str = AGGREGATE_LOG_LEVEL, read_limits: tuple[float, int] | None = None
) -> int:
    """The offline command: with its settings when one is set, else with their defaults, without importing them."""
    # no linear algebra here: without this, OpenBLAS starts a thread per core when numpy is imported, and they
    # spin for ~50 ms of CPU (a user's own setting is kept)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from backend.offline import aggregate_command
    from backend.sources.formats import ReadLimits

    configure_logging(log_level)
    _exit_on_stop_signals()  # SIGTERM unwinds like Ctrl-C: the spill files are removed, no half-written output
    # the defaults are Settings().read_max_ratio, .read_max_bytes (tests/unit/test_config.py)
    limits = ReadLimits(*read_limits) if read_limits else ReadLimits()
    return aggregate_command(args.path, args.intervals, args.out, fmt=args.fmt, symbol=args.symbol, limits=limits)


def _exit_on_stop_signals() -> None:
    """Make the stop signals other than Ctrl-C raise ``SystemExit(128 + signal)`` (a shell's status for them), so
    ``finally`` blocks run; by default SIGTERM ends the process where it stands."""
    from backend import processes

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    for signum in processes.STOP_SIGNALS:
        if signum != signal.SIGINT:
            signal.signal(signum, handler)


def _stop_on_signals(stop: threading.Event) -> None:
    from backend import processes

    def handler(signum: int, _frame: object) -> None:
        log.info("signal %d: shutting down", signum)
        stop.set()

    for signum in processes.STOP_SIGNALS:
        signal.signal(signum, handler)


def _announce_embedded(settings: Settings, target: RedisTarget) -> None:
    """Tell the System page (through the ingest's stats) which embedded server this stack runs on."""
    if target.embedded is None:
        return
    import redis

    from backend.cache import CacheKeys

    client = redis.Redis.from_url(target.url, socket_timeout=5, socket_connect_timeout=2)
    try:
        client.hset(CacheKeys(settings.redis_prefix).stats("ingest"), "redis_server", json.dumps(target.embedded))
    finally:
        client.close()


def run_db(settings: Settings, action: str) -> int:
    """``db upgrade``: migrate and print the revision; ``db current``: print it (none: not made yet)."""
    from sqlalchemy import create_engine

    from backend.migrations import current_revision, head_revision, migrate
    from backend.store import make_engine, normalize_url

    url = settings.effective_database_url()
    if action == "upgrade":
        engine = make_engine(url, timeouts=settings.db_timeouts())  # migrates
        print(f"database at revision {migrate(engine)} (newest)")
    else:
        engine = create_engine(normalize_url(url))
        current = current_revision(engine)
        print(f"database at revision {current or 'none'}; newest is {head_revision()}")
    engine.dispose()
    return 0


def run_ingest(settings: Settings, *, fmt: str | None = None) -> int:
    import redis

    from backend.embedded import redis_url_or_embedded
    from backend.ingest import IngestService
    from backend.sinks import default_sinks
    from backend.sources import open_source
    from backend.sources.formats import ReadLimits
    from backend.store import make_engine

    try:
        source = open_source(
            settings.source,
            symbols=settings.symbols,
            speed=settings.speed,
            seed=settings.seed,
            fmt=fmt,
            history_s=settings.sim_history_s,
            limits=ReadLimits(settings.read_max_ratio, settings.read_max_bytes),
            rate=settings.sim_rate,
            backfill_s=settings.backfill_s,
            silence_s=settings.feed_silence_s,
            exchange_urls=dict(settings.exchange_urls),
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with redis_url_or_embedded(settings.redis_url, settings.embedded) as target:
        url = target.url
        _announce_embedded(settings, target)
        # a hung Redis must not hang ingest
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        engine = make_engine(settings.effective_database_url(), timeouts=settings.db_timeouts())
        service = IngestService(settings, source, client, default_sinks(settings, client, engine), history=engine)
        stop = threading.Event()
        _stop_on_signals(stop)
        log.info("ingest: %s → Redis %s, SQL %s", settings.source, url, engine.url.render_as_string())
        try:
            service.run(stop)
        except ValueError as exc:  # a broken trade file (TradeFileError), or a live source found wrong once connected
            print(f"error: {exc}", file=sys.stderr)
            return 2
        finally:
            pending = service.close()  # waits up to the drain timeout; what is left stays in the spool
    return 1 if pending else 0


def run_api(settings: Settings) -> int:
    from backend.embedded import redis_url_or_embedded
    from backend.relay.server import serve

    with redis_url_or_embedded(settings.redis_url, settings.embedded) as target:
        # keeps the flags (--port, --host) with an embedded server too
        return serve(settings.model_copy(update={"redis_url": target.url}))


def run_both(settings: Settings, *, fmt: str | None = None) -> int:
    """One machine: an embedded server when unconfigured, ingest as a child process, relay here.

    One ``run`` per data directory (a second one is refused, naming the first's pid); the children
    (ingest, embedded server) end with this process however it ends.
    """
    from backend import processes

    try:
        with processes.hold_data_dir(settings.data_dir):
            return _run_both(settings, fmt)
    except processes.DataDirInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run_both(settings: Settings, fmt: str | None) -> int:
    from backend import processes
    from backend.embedded import redis_url_or_embedded
    from backend.envsettings import as_flags
    from backend.relay.server import serve

    with redis_url_or_embedded(settings.redis_url, settings.embedded) as target:
        url = target.url
        _announce_embedded(settings, target)
        env = dict(os.environ, CANDLES_REDIS_URL=url)  # in the environment, not on the command line (ps)
        child_settings = settings.model_copy(
            update={"redis_url": None, "database_url": settings.effective_database_url()}
        )
        cmd = [sys.executable, "-m", "backend", "ingest", *as_flags(child_settings, "ingest")]
        if fmt:
            cmd += ["--format", fmt]
        # a group of its own on Windows, so that Ctrl-Break reaches the child alone (no SIGTERM there)
        child = subprocess.Popen(cmd, env=env, **processes.group_options(processes.WINDOWS))
        processes.guard(child.pid)
        stopping, ingest_failed = threading.Event(), threading.Event()
        watch = threading.Thread(target=_end_with_ingest, args=(child, stopping, ingest_failed), daemon=True)
        watch.start()
        try:
            code = serve(settings.model_copy(update={"redis_url": url}))
        finally:
            stopping.set()
            processes.stop(child, 15, own_group=processes.WINDOWS)
            processes.unguard(child.pid)
    return code or failed_status(child.returncode if ingest_failed.is_set() else 0)


def failed_status(returncode: int | None) -> int:
    """A child's status as a shell reports it: its exit code, or 128 + the signal that killed it."""
    if returncode is None:
        return 0
    return 128 - returncode if returncode < 0 else returncode


def _end_with_ingest(child: subprocess.Popen[bytes], stopping: threading.Event, failed: threading.Event) -> None:
    """The ingest failed by itself (a bad source, a crash, the OOM killer): say so and stop the relay too, so ``run``
    ends with its status instead of serving a stack that no longer takes trades. A replay that ends (status 0)
    leaves the relay serving what it made."""
    status = child.wait()
    if stopping.is_set():
        return
    if status == 0:
        log.info("the ingest finished: the relay keeps serving its candles")
        return
    failed.set()
    log.error("the ingest exited with status %d: stopping the stack", failed_status(status))
    signal.raise_signal(signal.SIGINT)  # the relay's own shutdown, as Ctrl-C (uvicorn, or the workers' supervisor)

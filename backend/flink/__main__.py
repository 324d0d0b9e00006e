"""``python -m backend.flink run``: trades → candles on Apache Flink (in ``.venv-flink``; see the README)."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from backend.config import Settings, parse_intervals
from backend.flink.job import JavaMissing, JobSpec, java_version, run_job
from backend.flink.sink import CandleOutputs, contract_sinks
from backend.flink.sql import csv_options, kafka_options
from backend.flink.trades import convert
from backend.sources.formats import ReadLimits


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m backend.flink", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="aggregate trades into candles on Flink",
        description="Candles go to --out (the format of `python -m backend aggregate --out`) and, when "
        "CANDLES_REDIS_URL is set, to Redis (cache + PUBLISH) and SQL (CANDLES_DATABASE_URL) as the ingest "
        "writes them.",
    )
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", type=Path, help="a trade file or a directory of them (replay formats)")
    source.add_argument("--kafka", metavar="SERVERS", help="Kafka bootstrap servers: read trades from --topic")
    run.add_argument("--topic", default="trades", help="Kafka topic of JSON trades (default trades)")
    run.add_argument("--group", default="candlestream-flink", help="Kafka consumer group")
    run.add_argument("--jars", default="", help="comma-separated connector jars (Kafka: flink-sql-connector-kafka)")
    run.add_argument("--intervals", default="1m", help="comma-separated intervals (default 1m)")
    run.add_argument("--out", type=Path, help="output .csv (header row) or .jsonl")
    run.add_argument("--format", dest="fmt", help="input format (default: detected from the content)")
    run.add_argument("--symbol", help="symbol for formats whose rows do not name one")
    run.add_argument("--parallelism", type=int, default=1, help="parallel subtasks, keyed by symbol (default 1)")
    run.add_argument("--lateness-ms", type=int, default=5_000, help="how far a trade may lag the newest (default 5000)")
    run.add_argument("--checkpoint-ms", type=int, help="checkpoint interval (default: no checkpoints)")
    run.add_argument(
        "--batch-rows",
        type=int,
        help="result rows handed over at once (default 10000 for --input; 1 for --kafka: each candle as it closes)",
    )
    run.add_argument("--jobmanager", metavar="HOST:PORT", help="run on this cluster (its REST port; default: local)")
    return parser


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    """The ``run`` command; the exit status (2: a one-line error)."""
    intervals = parse_intervals(args.intervals)
    java_version()  # before reading anything: without Java nothing can run
    sinks = contract_sinks(settings) if settings.redis_url else []
    if args.out is None and not sinks:
        raise ValueError("nothing to write to: pass --out, or set CANDLES_REDIS_URL")
    jars = tuple(Path(j).resolve().as_uri() for j in args.jars.split(",") if j)
    outputs = CandleOutputs(args.out, sinks)
    with tempfile.TemporaryDirectory(prefix="candles-flink-") as tmp:
        read = converted = ""
        if args.input is not None:
            limits = ReadLimits(settings.read_max_ratio, settings.read_max_bytes)
            csv = Path(tmp) / "trades.csv"
            started = time.monotonic()
            done = convert(args.input, csv, fmt=args.fmt, symbol=args.symbol, limits=limits)
            converted = f"converted in {time.monotonic() - started:.1f} s, "
            for why in done.skipped:
                print(f"skipped {why}", file=sys.stderr)
            options = csv_options(str(csv))
            rejects = done.rejects
            read = f"read {done.trades + rejects.total} rows: rejected {rejects.total} ({rejects.summary()}), "
        else:
            options = kafka_options(args.kafka, args.topic, args.group)
        batch_rows = args.batch_rows or (10_000 if args.input is not None else 1)
        spec = JobSpec(
            options,
            intervals,
            parallelism=args.parallelism,
            lateness_ms=args.lateness_ms,
            checkpoint_ms=args.checkpoint_ms,
            jars=jars,
            jobmanager=args.jobmanager,
            batch_rows=batch_rows,
        )
        try:
            report = run_job(spec, outputs)
            undelivered = outputs.finish()
        finally:
            outputs.close()
    late = sum(report.late.values())
    where = f" to {args.out}" if args.out else ""
    print(
        f"{read}late {late}; wrote {outputs.written} candles{where}; {converted}first batch after "
        f"{report.started_s or 0:.1f} s, done after {report.total_s:.1f} s",
        file=sys.stderr,
    )
    if undelivered:
        print(f"error: {undelivered} closed candles not delivered (left in the spool)", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run_command(args, Settings.from_env())
    except JavaMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"error: no such file: {exc.filename or exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

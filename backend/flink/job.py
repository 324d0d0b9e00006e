"""Run the candle job on Flink: trades (CSV files or Kafka) → Flink SQL → window rows → candles → outputs.

The job runs on a local mini-cluster (``python -m backend.flink run``) or on a cluster (``--jobmanager``, or
submitted with ``flink run -pym backend.flink``); either way the SQL does the per-trade work, keyed by symbol,
at the configured parallelism, and this process receives one row per candle with trades (in Arrow batches),
adds the flat candles, ``closed`` and ``seq`` (:mod:`backend.flink.candles`) and writes them
(:mod:`backend.flink.sink`). Candles are a small fraction of trades: one row per stream and period.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from backend.flink.candles import CandleStreams
from backend.flink.sink import CandleOutputs
from backend.flink.sql import JOB_CONFIG, candle_query, trades_ddl
from backend.models import Candle

log = logging.getLogger(__name__)

FLUSH_CANDLES = 5_000  # candles per flush to the outputs at most (one Redis round trip)
JAVA_HELP = (
    "PyFlink needs Java 11 or newer on PATH (or JAVA_HOME): e.g. `apt-get install openjdk-17-jre-headless` "
    "(Debian, Ubuntu) or `brew install openjdk@17` (macOS)"
)


class JavaMissing(RuntimeError):
    """No usable Java: PyFlink cannot start its JVM."""


def java_version() -> int:
    """The major version of the ``java`` PyFlink will start; raises :class:`JavaMissing` (11+ is required)."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise JavaMissing(f"no java found. {JAVA_HELP}")
    try:
        text = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JavaMissing(f"{java} -version failed ({exc}). {JAVA_HELP}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not match:
        raise JavaMissing(f"cannot read the version of {java}: {text.strip()[:200]}. {JAVA_HELP}")
    major = int(match.group(1))
    if major == 1:  # Java 8 and older say "1.8"
        major = int(match.group(2) or 0)
    if major < 11:
        raise JavaMissing(f"{java} is Java {major}. {JAVA_HELP}")
    return major


@dataclass
class JobSpec:
    """What to run: the trade table's connector options, the intervals and how the job runs."""

    source: dict[str, str]
    intervals: tuple[str, ...]
    parallelism: int = 1
    lateness_ms: int = 5_000
    checkpoint_ms: int | None = None  # checkpointing interval (a Kafka source resumes from its offsets)
    jars: tuple[str, ...] = ()  # connector jars (Kafka), as file:// URLs
    jobmanager: str | None = None  # HOST:PORT of a cluster's REST endpoint (None: a local mini-cluster)
    batch_rows: int = 10_000  # result rows handed over at once (a file: many; Kafka: few, for latency)


@dataclass
class JobReport:
    """What a run did; ``started_s``: from the start to the first row (JVM, mini-cluster, job graph)."""

    rows: int = 0
    candles: int = 0
    late: dict[str, int] = field(default_factory=dict)
    started_s: float | None = None
    total_s: float = 0.0


def job_config(spec: JobSpec) -> dict[str, str]:
    """Every Flink setting of the run: :data:`JOB_CONFIG`, parallelism, checkpoints, jars and where it runs."""
    config = dict(JOB_CONFIG)
    config["parallelism.default"] = str(spec.parallelism)
    if spec.checkpoint_ms:
        config["execution.checkpointing.interval"] = f"{spec.checkpoint_ms} ms"
    if spec.jars:
        config["pipeline.jars"] = ";".join(spec.jars)
    if spec.jobmanager:  # a session cluster's REST endpoint: the job runs there, this process collects its rows
        host, _, port = spec.jobmanager.rpartition(":")
        config |= {"execution.target": "remote", "rest.address": host, "rest.port": port}
    return config


def table_environment(spec: JobSpec) -> Any:
    """A streaming TableEnvironment configured for the job (the JVM starts here)."""
    from pyflink.common import Configuration
    from pyflink.table import EnvironmentSettings, TableEnvironment

    config = Configuration()
    for key, value in job_config(spec).items():
        config.set_string(key, value)
    settings = EnvironmentSettings.new_instance().in_streaming_mode().with_configuration(config).build()
    return TableEnvironment.create(settings)


def row_batches(env: Any, query: str, batch_rows: int) -> Iterator[list[tuple]]:
    """The query's rows as they come, up to ``batch_rows`` at a time, through Arrow.

    PyFlink's ``TableResult.collect()`` makes several JVM calls per row (about 500 rows/s measured here), which
    would bound the job by its candle rows; this is what ``Table.to_pandas()`` does inside (Arrow batches built in
    the JVM), without gathering the whole result first. A batch is handed over when ``batch_rows`` rows are ready
    or the input has ended.
    """
    import pytz
    from pyflink.java_gateway import get_gateway
    from pyflink.table.serializers import ArrowSerializer
    from pyflink.table.types import create_arrow_schema

    table = env.sql_query(query)
    env._before_execute()
    schema = table.get_schema()
    arrow_schema = create_arrow_schema(schema.get_field_names(), schema.get_field_data_types())
    serializer = ArrowSerializer(arrow_schema, schema.to_row_data_type(), pytz.UTC)
    arrow_utils = get_gateway().jvm.org.apache.flink.table.runtime.arrow.ArrowUtils
    batches = arrow_utils.collectAsPandasDataFrame(table._j_table, batch_rows)
    for batch in serializer.load_from_iterator(batches):
        yield list(zip(*(column.to_pylist() for column in batch.columns), strict=True))


def run_job(spec: JobSpec, outputs: CandleOutputs) -> JobReport:
    """Run the job until its input ends (a file) or it is cancelled (Kafka); every candle goes to ``outputs``."""
    java_version()
    start = time.monotonic()
    report = JobReport()
    env = table_environment(spec)
    env.execute_sql(trades_ddl(spec.source, spec.lateness_ms))
    streams = CandleStreams()
    for rows in row_batches(env, candle_query(spec.intervals), spec.batch_rows):
        if report.started_s is None:
            report.started_s = time.monotonic() - start
        report.rows += len(rows)
        closed: list[Candle] = []
        for kind, *fields in rows:
            if kind == "late":
                report.late[fields[0]] = report.late.get(fields[0], 0) + 1
            else:
                closed += streams.add(tuple(fields))  # type: ignore[arg-type]
        for i in range(0, len(closed), FLUSH_CANDLES):
            outputs.put(closed[i : i + FLUSH_CANDLES])
    last = streams.open_candles()
    outputs.put(last)
    report.candles = outputs.written
    report.total_s = time.monotonic() - start
    return report

"""The Flink SQL of the job: the trade table (CSV files or a Kafka topic) and the candle query (pure text).

The hot path is SQL only, no per-trade Python. Only the finest interval reads the trades: a tumbling
window of event time gives high, low, the sums and the count; open and close come from Window Top-N
(``ROW_NUMBER()`` by ``(ts, trade_id)``, ascending for the open, descending for the close), because
``FIRST_VALUE`` and ``LAST_VALUE`` follow arrival order and disagree with the exchange when trades arrive
out of order or share a timestamp; the three are joined per ``(symbol, window)``. Every coarser interval
is a window over those finest candles (cascaded on their ``window_time``), so the per-trade work does not
grow with the number of intervals. Every operator is keyed by symbol: that is the job's parallelism.

A trade at or behind the watermark (more than ``lateness_ms`` behind the newest trade, in whole seconds)
is late: it is left out of every candle (filtered before the windows) and comes out as a ``late`` row, so
the job counts it. ``open_time`` is computed from the first trade's epoch milliseconds (windows are
aligned to the epoch in UTC), so no timestamp conversion is involved.
"""

from __future__ import annotations

from backend.config import INTERVALS_MS

TRADES = "trades"
# the job's settings that make its candles a function of the input alone (see trades_ddl and the module doc)
JOB_CONFIG = {
    "table.local-time-zone": "UTC",
    # watermarks advance with the trades, not on a processing-time timer: every branch of the plan (each
    # interval's aggregate and Top-N, the late trades) decides on-time or late for the same trades
    "pipeline.auto-watermark-interval": "0 ms",
    # sums in arrival order, not partial sums whose grouping depends on when a local pre-aggregate flushed
    "table.optimizer.agg-phase-strategy": "ONE_PHASE",
    # chained operators hand rows over without copying them (the SQL operators do not keep rows they pass on)
    "pipeline.object-reuse": "true",
}
KINDS = ("candle", "late")
# the columns of every row the candle query returns, in order (late rows fill the candle columns with NULL)
RESULT_COLUMNS = (
    "kind",
    "symbol",
    "interval_name",
    "open_time",
    "open_price",
    "high",
    "low",
    "close_price",
    "volume",
    "quote_volume",
    "trades",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "event_time",
)
# the trade columns of the CSV files the job reads (backend.flink.trades writes them)
TRADE_COLUMNS = (
    ("symbol", "STRING"),
    ("price", "DOUBLE"),
    ("qty", "DOUBLE"),
    ("ts_ms", "BIGINT"),
    ("trade_id", "BIGINT"),
    ("taker_buy", "BOOLEAN"),
    ("cnt", "BIGINT"),
)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def trades_ddl(options: dict[str, str], lateness_ms: int) -> str:
    """``CREATE TABLE trades``: the trade columns, event time ``ts`` from ``ts_ms`` and its watermark.

    The watermark is the newest trade's second minus ``lateness_ms``: whole seconds, so that with
    ``pipeline.auto-watermark-interval = 0`` (:data:`JOB_CONFIG`) it advances at most once per second of
    event time, at the same trade in every branch of the plan, whatever the machine's speed.
    """
    columns = ",\n  ".join(f"`{name}` {kind}" for name, kind in TRADE_COLUMNS)
    with_options = ",\n  ".join(f"{_quote(k)} = {_quote(v)}" for k, v in options.items())
    return (
        f"CREATE TEMPORARY TABLE {TRADES} (\n  {columns},\n"
        "  ts AS TO_TIMESTAMP_LTZ(ts_ms, 3),\n"
        f"  WATERMARK FOR ts AS TO_TIMESTAMP_LTZ(ts_ms - MOD(ts_ms, 1000), 3) - {interval_literal(lateness_ms)}\n"
        f") WITH (\n  {with_options}\n)"
    )


def csv_options(path: str) -> dict[str, str]:
    """The filesystem connector reading the CSV trade files under ``path`` (bounded: read once)."""
    return {"connector": "filesystem", "path": path, "format": "csv", "csv.ignore-parse-errors": "false"}


def kafka_options(servers: str, topic: str, group: str, start: str = "earliest-offset") -> dict[str, str]:
    """The Kafka connector: JSON messages with the trade columns (``symbol``, ``price``, ``qty``, ``ts_ms``,
    ``trade_id``, ``taker_buy``, ``cnt``); needs the ``flink-sql-connector-kafka`` jar (``--jars``)."""
    return {
        "connector": "kafka",
        "topic": topic,
        "properties.bootstrap.servers": servers,
        "properties.group.id": group,
        "scan.startup.mode": start,
        "format": "json",
        "json.fail-on-missing-field": "false",
        "json.ignore-parse-errors": "false",
    }


_UNITS = (("DAY", 86_400_000), ("HOUR", 3_600_000), ("MINUTE", 60_000), ("SECOND", 1_000))


def interval_literal(ms: int) -> str:
    """An SQL interval literal in the largest unit that divides ``ms`` (Flink caps a literal's digits)."""
    if ms % 1000:
        if not 0 <= ms < 100_000:
            raise ValueError(f"{ms} ms: use whole seconds from 100 s")
        return f"INTERVAL '{ms / 1000:.3f}' SECOND"
    if ms == 0:
        return "INTERVAL '0' SECOND"
    unit, size = next((u, s) for u, s in _UNITS if ms % s == 0)
    return f"INTERVAL '{ms // size}' {unit}"


def _window(interval: str) -> str:
    return f"TABLE(TUMBLE(TABLE on_time, DESCRIPTOR(ts), {interval_literal(INTERVALS_MS[interval])}))"


def _top(interval: str, order: str) -> str:
    """The first (``ASC``) or last (``DESC``) trade of each window by (ts, trade_id): Window Top-N."""
    return (
        "SELECT symbol, window_start, window_end, price FROM (\n"
        "    SELECT symbol, window_start, window_end, price, ROW_NUMBER() OVER (\n"
        f"      PARTITION BY window_start, window_end, symbol ORDER BY ts {order}, trade_id {order}) AS rn\n"
        f"    FROM {_window(interval)})\n"
        "  WHERE rn = 1"
    )


def _finest_query(interval: str) -> str:
    """The candles of the finest interval from the trades: aggregate, first and last trade (Top-N), joined."""
    return f"""SELECT a.symbol, a.first_ms, f.price AS open_price, a.high, a.low, l.price AS close_price,
  a.volume, a.quote_volume, a.trades, a.taker_buy_volume, a.taker_buy_quote_volume, a.event_time,
  a.window_time AS wt
FROM (
  SELECT symbol, window_start, window_end, window_time, MIN(ts_ms) AS first_ms, MAX(price) AS high,
    MIN(price) AS low, SUM(qty) AS volume, SUM(price * qty) AS quote_volume, SUM(cnt) AS trades,
    SUM(CASE WHEN taker_buy THEN qty ELSE 0.0 END) AS taker_buy_volume,
    SUM(CASE WHEN taker_buy THEN price * qty ELSE 0.0 END) AS taker_buy_quote_volume,
    MAX(ts_ms) AS event_time
  FROM {_window(interval)}
  GROUP BY symbol, window_start, window_end, window_time) a
JOIN ({_top(interval, "ASC")}) f
  ON a.symbol = f.symbol AND a.window_start = f.window_start AND a.window_end = f.window_end
JOIN ({_top(interval, "DESC")}) l
  ON a.symbol = l.symbol AND a.window_start = l.window_start AND a.window_end = l.window_end"""


def _output(interval: str, source: str, *, rollup: bool) -> str:
    """The result rows of one interval: the finest candles as they are, or a coarser interval rolled up from them.

    A rollup takes the open of its first finest candle and the close of its last (``FIRST_VALUE``/``LAST_VALUE``:
    the finest candles of a symbol reach it in time order, from one subtask that fires its windows in order) and
    adds their sums in that order, as the in-process aggregator merges its finest partial candles.
    """
    ms = INTERVALS_MS[interval]
    if rollup:
        first = "MIN(first_ms)"
        values = (
            "FIRST_VALUE(open_price), MAX(high), MIN(low), LAST_VALUE(close_price), SUM(volume), SUM(quote_volume), "
            "SUM(trades), SUM(taker_buy_volume), SUM(taker_buy_quote_volume), MAX(event_time)"
        )
        rows = f"TABLE(TUMBLE(TABLE {source}, DESCRIPTOR(wt), {interval_literal(ms)}))"
        group = "\nGROUP BY symbol, window_start, window_end"
    else:
        first = "first_ms"
        values = (
            "open_price, high, low, close_price, volume, quote_volume, trades, taker_buy_volume, "
            "taker_buy_quote_volume, event_time"
        )
        rows, group = source, ""
    return (
        f"SELECT 'candle' AS kind, symbol, '{interval}' AS interval_name, {first} - MOD({first}, {ms}) AS open_time,\n"
        f"  {values}\nFROM {rows}{group}"
    )


def candle_query(intervals: tuple[str, ...]) -> str:
    """Every candle with trades of every interval, plus one ``late`` row per late trade (see the module doc).

    Only the finest interval reads the trades; every coarser one is rolled up from its candles, so the per-trade
    work does not grow with the number of intervals.
    """
    nulls = "CAST(NULL AS DOUBLE)"
    late = (
        "SELECT 'late' AS kind, symbol, CAST(NULL AS STRING) AS interval_name, ts_ms AS open_time, "
        f"{nulls}, {nulls}, {nulls}, {nulls}, {nulls}, {nulls}, CAST(NULL AS BIGINT), {nulls}, {nulls}, "
        f"ts_ms AS event_time\nFROM {TRADES} WHERE ts <= CURRENT_WATERMARK(ts)"
    )
    finest, *coarser = sorted(intervals, key=INTERVALS_MS.__getitem__)
    parts = [_output(finest, "finest", rollup=False), *(_output(iv, "finest", rollup=True) for iv in coarser)]
    return (
        "WITH on_time AS (\n"
        f"  SELECT * FROM {TRADES} WHERE CURRENT_WATERMARK(ts) IS NULL OR ts > CURRENT_WATERMARK(ts)),\n"
        f"finest AS (\n{_finest_query(finest)})\n" + "\nUNION ALL\n".join([*parts, late])
    )

"""The Flink SQL of the job: the trade table (CSV files or a Kafka topic) and the candle query (pure text).

The hot path is SQL only, no per-trade Python. Each interval is one tumbling window of event time over
the trades: high, low, the count and the sums, which ``SUM`` adds in arrival order as the in-process
aggregator does (so its candles are the aggregator's to the last bit); open and close are ``MIN`` and
``MAX`` of a key that sorts trades by ``(ts, trade_id)`` and ends with the price (:data:`ORDER_KEY`),
because ``FIRST_VALUE`` and ``LAST_VALUE`` follow arrival order and disagree with the exchange when
trades arrive out of order or share a timestamp. Every operator is keyed by symbol: that is the job's
parallelism.

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
    # interval's aggregate, the late trades) decides on-time or late for the same trades
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


# a trade's place in (ts, trade_id) order and its price, as one string that sorts in that order: zero-padded
# ts_ms, trade_id shifted to be non-negative, then the price as Java writes a double (``Double.toString``, which
# reads back as the same double). Flink SQL has no ARG_MIN: ``MIN`` of this key is the first trade, ``MAX`` the
# last, with no Top-N, join or per-trade Python.
_TS_DIGITS, _ID_DIGITS = 15, 20  # epoch ms up to the year 33658; a BIGINT plus 2**63 has at most 20 digits
ORDER_KEY = (
    f"CONCAT(LPAD(CAST(ts_ms AS STRING), {_TS_DIGITS}, '0'), "
    f"LPAD(CAST(CAST(trade_id AS DECIMAL(20, 0)) + CAST('9223372036854775808' AS DECIMAL(20, 0)) AS STRING), "
    f"{_ID_DIGITS}, '0'), CAST(price AS STRING))"
)
_PRICE_AT = _TS_DIGITS + _ID_DIGITS + 1  # where the price begins in ORDER_KEY (SQL counts from 1)


def _window(interval: str) -> str:
    return f"TABLE(TUMBLE(TABLE keyed, DESCRIPTOR(ts), {interval_literal(INTERVALS_MS[interval])}))"


def _interval_query(interval: str) -> str:
    """One interval's candles with trades, from the trades: one tumbling-window aggregate.

    ``SUM`` adds one trade at a time in arrival order (``ONE_PHASE``, :data:`JOB_CONFIG`), so each candle's sums
    are its trades added one by one, as the in-process aggregator adds them (:mod:`backend.rollup`): every
    interval reads the trades, rather than adding up the finest candles' sums.
    """
    ms = INTERVALS_MS[interval]
    return f"""SELECT 'candle' AS kind, symbol, '{interval}' AS interval_name,
  MIN(ts_ms) - MOD(MIN(ts_ms), {ms}) AS open_time,
  CAST(SUBSTRING(MIN(k) FROM {_PRICE_AT}) AS DOUBLE) AS open_price, MAX(price) AS high, MIN(price) AS low,
  CAST(SUBSTRING(MAX(k) FROM {_PRICE_AT}) AS DOUBLE) AS close_price,
  SUM(qty) AS volume, SUM(price * qty) AS quote_volume, SUM(cnt) AS trades,
  SUM(CASE WHEN taker_buy THEN qty ELSE 0.0 END) AS taker_buy_volume,
  SUM(CASE WHEN taker_buy THEN price * qty ELSE 0.0 END) AS taker_buy_quote_volume,
  MAX(ts_ms) AS event_time
FROM {_window(interval)}
GROUP BY symbol, window_start, window_end"""


def candle_query(intervals: tuple[str, ...]) -> str:
    """Every candle with trades of every interval, plus one ``late`` row per late trade (see the module doc)."""
    nulls = "CAST(NULL AS DOUBLE)"
    late = (
        "SELECT 'late' AS kind, symbol, CAST(NULL AS STRING) AS interval_name, ts_ms AS open_time, "
        f"{nulls}, {nulls}, {nulls}, {nulls}, {nulls}, {nulls}, CAST(NULL AS BIGINT), {nulls}, {nulls}, "
        f"ts_ms AS event_time\nFROM {TRADES} WHERE ts <= CURRENT_WATERMARK(ts)"
    )
    parts = [_interval_query(iv) for iv in sorted(intervals, key=INTERVALS_MS.__getitem__)]
    return (
        f"WITH keyed AS (\n  SELECT *, {ORDER_KEY} AS k FROM {TRADES}\n"
        "  WHERE CURRENT_WATERMARK(ts) IS NULL OR ts > CURRENT_WATERMARK(ts))\n" + "\nUNION ALL\n".join([*parts, late])
    )

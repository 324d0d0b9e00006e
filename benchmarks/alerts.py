"""Alerts: what 1,000 armed rules cost the ingest, and how long a trade takes to reach a webhook.

    .venv/bin/python benchmarks/alerts.py [--trades 300000] [--rules 1000] [--seconds 20]

1. Ingest rate, side by side in one run: simulator trades (20 symbols, 1,000 trades/s of market time) through
   the aggregator into the Redis sink and the alert sink, with 0 and with ``--rules`` armed rules (every kind,
   1 in 30 watching an indicator), alternated three times; best of each, per wall-clock second and per CPU
   second of the ingest thread (the steadier figure when other processes share the cores). One variant adds a
   webhook receiver that hangs: its slow deliveries must not slow the ingest. Then the engine alone: its CPU
   time on the same candle updates, against the ingest's with 0 rules.
2. Trade → webhook latency, live: trades stamped with the wall clock at ``--rate`` per second, fed the way a live
   source does (a batch every 25 ms tick), a rule that fires on every update, a local webhook receiver; latency =
   arrival at the receiver − the trade's timestamp (so it includes the 100 ms forming-candle coalescing).

Uses the machine's Redis when CANDLES_BENCH_REDIS_URL is set, else an embedded Valkey; SQLite in a temp dir.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec
import redis

from backend.aggregate import Aggregator
from backend.alerts import store
from backend.alerts.rules import AlertEngine
from backend.cache import CacheKeys
from backend.config import DEFAULT_INTERVALS
from backend.models import AlertRule, TradeBatch, now_ms
from backend.sinks.alerts import AlertSink
from backend.sinks.redis import RedisSink
from backend.sources.simulator import Simulator
from backend.store import make_engine
from tests.webhook_receiver import WebhookReceiver

START_MS = 1_732_665_600_000
CHUNK = 1_000
TICK_S = 0.025  # the live sources' batch period
SYMBOLS = [f"SYM{i:02d}USDT" for i in range(20)]
WATCHES = ("ema20", "rsi14", "sma50", "vwap", "bb20_upper")


def redis_url() -> tuple[str, object | None]:
    import os

    url = os.environ.get("CANDLES_BENCH_REDIS_URL")
    if url:
        return url, None
    from backend.embedded import EmbeddedValkey

    server = EmbeddedValkey()
    return server.url, server


PRICE_KINDS = ("price_above", "cross", "channel_exit", "cross_down", "price_below", "cross_up")
EVERY_KIND = ("price_above", "cross", "pct_move", "volume_spike", "channel_exit", "cross_down")


def armed_rules(n: int, prices: dict[str, float], kinds: tuple[str, ...], indicators: bool) -> list[AlertRule]:
    """``n`` armed rules over every symbol and interval (levels away from the price, so they stay armed);
    with ``indicators`` a tenth of the level rules watch an indicator instead of the close."""
    rng = random.Random(7)
    rules = []
    for i in range(n):
        sym = SYMBOLS[i % len(SYMBOLS)]
        interval = DEFAULT_INTERVALS[(i // len(SYMBOLS)) % len(DEFAULT_INTERVALS)]
        p = prices[sym]
        kind = kinds[i % len(kinds)]
        threshold: object = {
            "price_above": p * 10,
            "cross": p * rng.uniform(1.5, 3),
            "pct_move": 50.0,
            "volume_spike": None,
            "channel_exit": [p * 0.01, p * 100],
            "cross_down": p * 0.1,
            "price_below": p * 0.1,
            "cross_up": p * rng.uniform(1.5, 3),
        }[kind]
        watch = (
            WATCHES[i % len(WATCHES)] if indicators and i % 10 == 0 and kind in {"price_above", "cross"} else "close"
        )
        if watch == "rsi14":
            threshold = 101.0
        rules.append(
            AlertRule(
                symbol=sym,
                interval=interval,
                kind=kind,
                threshold=threshold,
                watch=watch,  # type: ignore[arg-type]
                frequency="per_candle",
                lookback=20,
                factor=1000.0,
            )
        )
    return rules


def ingest_rate(batch: TradeBatch, url: str, rules: list[AlertRule], tag: str) -> tuple[float, float, int]:
    """Trades/s through aggregator → Redis sink → alert sink, per wall-clock second and per CPU second of the
    ingest thread (steady when other processes share the cores); and how many alerts fired."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
    engine = make_engine(f"sqlite:///{tmp / 'a.sqlite3'}")
    for r in rules:
        store.create_rule(engine, r, START_MS)
    client = redis.Redis.from_url(url)
    sinks = [
        RedisSink(client, keys=CacheKeys(f"bench{tag}"), channel=f"bench{tag}:updates"),
        AlertSink(engine, client, alerts_channel=f"bench{tag}:alerts", rules_channel=f"bench{tag}:rules"),
    ]
    agg = Aggregator(DEFAULT_INTERVALS, emit_ms=100)
    parts = batch.split(CHUNK)
    t0, cpu0 = time.perf_counter(), time.thread_time()
    for part in parts:
        agg.add(part)
        candles = agg.drain(int(part.ts[-1]))
        for sink in sinks:
            sink.put(candles)
    elapsed, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
    fired = sinks[1].stats()["alerts_fired"]
    sinks[1].close(2)
    client.close()
    engine.dispose()
    return len(batch) / elapsed, len(batch) / cpu, fired


def engine_cost(batch: TradeBatch, variants: dict[str, list[AlertRule]]) -> tuple[int, float, dict[str, float]]:
    """CPU seconds of the aggregator alone, and of the alert engine alone on its candle updates, per rule set
    (best of 3): the engine's own cost, free of Redis, SQL and the other sinks."""
    agg = Aggregator(DEFAULT_INTERVALS, emit_ms=100)
    flushes = []
    t0 = time.thread_time()
    for part in batch.split(CHUNK):
        agg.add(part)
        flushes.append(agg.drain(int(part.ts[-1])))
    aggregator = time.thread_time() - t0
    out = {}
    for name, rules in variants.items():
        armed = [msgspec.structs.replace(r, id=i + 1) for i, r in enumerate(rules)]
        best = math.inf
        for _ in range(3):
            engine = AlertEngine(armed, started_at=START_MS)
            t0 = time.thread_time()
            for candles in flushes:
                engine.on_candles(candles, START_MS)
            best = min(best, time.thread_time() - t0)
        out[name] = best
    return sum(map(len, flushes)), aggregator, out


def latency(url: str, seconds: float, rate: float) -> list[float]:
    """Trade → webhook milliseconds for a rule that fires on every update of a live stream."""
    receiver = WebhookReceiver()
    tmp = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
    engine = make_engine(f"sqlite:///{tmp / 'l.sqlite3'}")
    store.create_rule(
        engine,
        AlertRule(
            symbol="LATUSDT",
            interval="1s",
            kind="price_above",
            threshold=1.0,
            frequency="every",
            targets=[receiver.url],
        ),
        now_ms(),
    )
    client = redis.Redis.from_url(url)
    sinks = [
        RedisSink(client, keys=CacheKeys("benchlat"), channel="benchlat:updates"),
        AlertSink(engine, client, alerts_channel="benchlat:alerts", rules_channel="benchlat:rules"),
    ]
    agg = Aggregator(("1s",), emit_ms=100, live=True)
    sent: dict[float, int] = {}  # price → the trade's timestamp (ms): every trade has its own price
    deadline = time.monotonic() + seconds
    next_trade, i = time.monotonic(), 0
    while time.monotonic() < deadline:  # like a live source: a batch every tick (25 ms), a trade when one is due
        trades: list[tuple[float, int]] = []
        if time.monotonic() >= next_trade:
            i += 1
            trades.append((100.0 + i / 1000, now_ms()))
            next_trade += 1 / rate
        for price, ts in trades:
            sent[round(price, 6)] = ts
            agg.add(TradeBatch.from_columns(["LATUSDT"], [0], [ts], [price], [1.0], [i], [True], [1]))
        candles = agg.drain(now_ms())
        for sink in sinks:
            sink.put(candles)
        time.sleep(TICK_S)
    time.sleep(1.0)
    sinks[1].close(5)
    first: dict[float, float] = {}  # a trade's first alert (a candle's close repeats its last trade's price)
    for body, arrived in zip(receiver.bodies, receiver.arrivals, strict=True):
        value = round(msgspec.json.decode(body)["value"], 6)
        if value in sent and value not in first:
            first[value] = arrived * 1000 - sent[value]
    out = list(first.values())
    receiver.close()
    client.close()
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) >= 100 else max(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trades", type=int, default=300_000)
    parser.add_argument("--rules", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the latency run")
    parser.add_argument("--rate", type=float, default=5.0, help="trades per second in the latency run")
    args = parser.parse_args()

    url, server = redis_url()
    batch = Simulator(SYMBOLS, seed=42, rate=1_000.0).generate(START_MS, n_trades=args.trades)
    first = {s: None for s in SYMBOLS}
    for sym_i, price in zip(batch.sym.tolist(), batch.price.tolist(), strict=True):
        first[batch.symbols[sym_i]] = first[batch.symbols[sym_i]] or price
    prices = {s: float(p or 1.0) for s, p in first.items()}
    hanging = WebhookReceiver(hang_s=5.0)
    n = args.rules
    variants = {
        "0 rules": [],
        f"{n} price rules (levels, crosses, channels)": armed_rules(n, prices, PRICE_KINDS, False),
        f"{n} price rules, 10 firing into a hanging webhook": armed_rules(n - 10, prices, PRICE_KINDS, False)
        + [
            AlertRule(
                symbol=s,
                interval="1s",
                kind="price_above",
                threshold=0.0,
                frequency="every",
                cooldown_s=1,
                targets=[hanging.url],
            )
            for s in SYMBOLS[:10]
        ],
        f"{n} rules of every kind (moves, volume spikes)": armed_rules(n, prices, EVERY_KIND, False),
        f"{n} rules of every kind, 1 in 30 on an indicator": armed_rules(n, prices, EVERY_KIND, True),
    }
    best: dict[str, float] = {}
    best_cpu: dict[str, float] = {}
    fired: dict[str, int] = {}
    for round_ in range(3):
        for name, rules in variants.items():
            rate, cpu_rate, n = ingest_rate(batch, url, rules, f"{round_}{len(best)}{len(name)}")
            best[name] = max(best.get(name, 0.0), rate)
            best_cpu[name] = max(best_cpu.get(name, 0.0), cpu_rate)
            fired[name] = n
    base, base_cpu = best["0 rules"], best_cpu["0 rules"]
    print(f"ingest: {args.trades:,} trades, {len(SYMBOLS)} symbols, intervals {','.join(DEFAULT_INTERVALS)}")
    print(f"{'variant':<52} {'trades/s':>10} {'vs 0 rules':>11} {'per CPU s':>10} {'vs 0 rules':>11} {'alerts':>7}")
    for name in variants:
        print(
            f"{name:<52} {best[name]:>10,.0f} {best[name] / base - 1:>+10.1%} "
            f"{best_cpu[name]:>10,.0f} {best_cpu[name] / base_cpu - 1:>+10.1%} {fired[name]:>7,}"
        )
    hanging.close()

    updates, aggregator, engine = engine_cost(batch, {k: v for k, v in variants.items() if "hanging" not in k})
    ingest = args.trades / base_cpu
    print(f"\nthe engine alone on the same {updates:,} candle updates, CPU time (the ingest with 0 rules: ", end="")
    print(f"{ingest * 1e3:.0f} ms, of which the aggregator {aggregator * 1e3:.0f} ms)")
    for name, seconds in engine.items():
        print(f"{name:<52} {seconds * 1e3:>7.1f} ms {seconds / ingest:>+7.1%} of the ingest")

    ms = latency(url, args.seconds, args.rate)
    print(f"\ntrade → webhook, {len(ms)} alerts at {args.rate:g} trades/s: "
          f"p50 {statistics.median(ms):.1f} ms, p99 {pct(ms, 99):.1f} ms, max {max(ms):.1f} ms")  # fmt: skip
    if server is not None:
        server.stop()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()

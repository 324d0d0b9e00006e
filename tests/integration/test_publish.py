"""The Redis sink against a real server: what subscribers receive, what the cache holds, what it costs."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator

import msgspec
import pytest
import redis

from backend.aggregate import Aggregator
from backend.cache import CacheKeys, load_resume_states, period_runs, save_resume_states, symbol_seen, valid_symbols
from backend.config import Settings
from backend.models import Candle, Trade, TradeBatch, decode_batch, decode_message, encode_message
from backend.sinks.redis import RedisSink
from backend.streams import StreamState, SymbolState

pytestmark = pytest.mark.integration
T0 = 1_732_665_600_000


def publisher(client: redis.Redis, settings: Settings, cap: int = 1000) -> RedisSink:
    return RedisSink(client, keys=CacheKeys(settings.redis_prefix), channel=settings.updates_channel, recent_cap=cap)


def trades(n: int, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"), step_ms: int = 350) -> list[TradeBatch]:
    out = []
    for i in range(n):
        out.append(
            TradeBatch.from_trades(
                [Trade(s, 100.0 + i + k, 0.5, T0 + i * step_ms, i * 10 + k, "buy") for k, s in enumerate(symbols)]
            )
        )
    return out


class Subscriber:
    """Collects every message on a channel on a background thread."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(channel)
        while self.pubsub.get_message(timeout=1.0) is None and not self.pubsub.subscribed:
            pass
        self.messages: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self.pubsub.get_message(timeout=0.05)
            if msg and msg["type"] == "message":
                self.messages.append(msg["data"])

    def candles(self, expect: int, timeout: float = 10.0) -> list[Candle]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [c for m in list(self.messages) for c in decode_batch(m)]
            if len(got) >= expect:
                break
            time.sleep(0.02)
        self._stop.set()
        self._thread.join()
        self.pubsub.close()
        return [c for m in self.messages for c in decode_batch(m)]  # type: ignore[misc]


def test_subscribers_receive_exactly_what_the_aggregator_emitted(redis_client, settings):
    sub = Subscriber(redis_client, settings.updates_channel)
    pub = publisher(redis_client, settings)
    agg = Aggregator(["1s", "1m"], emit_ms=0)
    emitted: list[Candle] = []
    for i, batch in enumerate(trades(30)):
        agg.add(batch)
        out = agg.drain(1_000 + i)
        emitted.extend(out)
        assert pub.put(out)
    received = sub.candles(len(emitted))
    assert received == emitted
    assert pub.flushes == 30


def test_stats_count_the_publish_receivers(redis_client, settings):
    """PUBLISH answers how many subscribers heard it: the relays listening, kept for the System page."""
    pub = publisher(redis_client, settings)
    agg = Aggregator(["1s"], emit_ms=0)
    batches = iter(trades(3))
    assert pub.stats()["publish_receivers"] is None and pub.stats()["publish_unheard"] == 0
    agg.add(next(batches))
    assert pub.put(agg.drain(1))
    assert (pub.stats()["publish_receivers"], pub.stats()["publish_unheard"]) == (0, 1)
    first, second = (
        Subscriber(redis_client, settings.updates_channel),
        Subscriber(redis_client, settings.updates_channel),
    )
    agg.add(next(batches))
    assert pub.put(agg.drain(2))
    assert (pub.stats()["publish_receivers"], pub.stats()["publish_unheard"]) == (2, 1)
    first.candles(0, timeout=0)
    second.candles(0, timeout=0)


def test_cache_holds_latest_and_capped_recent_closed_candles(redis_client, settings):
    pub = publisher(redis_client, settings, cap=5)
    keys = CacheKeys(settings.redis_prefix)
    agg = Aggregator(["1s"], emit_ms=0)
    for i, batch in enumerate(trades(20, symbols=("BTCUSDT",), step_ms=1_000)):
        agg.add(batch)
        pub.put(agg.drain(i))
    latest = decode_message(redis_client.get(keys.latest("BTCUSDT", "1s")))
    assert (latest.open_time, latest.closed) == (T0 + 19_000, False)
    assert 86_390 <= redis_client.ttl(keys.latest("BTCUSDT", "1s")) <= 86_400  # a day, in seconds
    recent = [decode_message(m) for m in redis_client.zrange(keys.recent("BTCUSDT", "1s"), 0, -1)]
    assert [c.open_time for c in recent] == [T0 + i * 1_000 for i in range(14, 19)]
    assert all(c.closed for c in recent)
    assert redis_client.smembers(keys.symbols) == {b"BTCUSDT"}


def test_rewriting_the_same_closed_candles_never_duplicates(redis_client, settings):
    pub = publisher(redis_client, settings)
    keys = CacheKeys(settings.redis_prefix)
    for _ in range(2):  # a replay of the same trades
        agg = Aggregator(["1s"], emit_ms=0)
        for i, batch in enumerate(trades(10, symbols=("BTCUSDT",), step_ms=1_000)):
            agg.add(batch)
            pub.put(agg.drain(i))
    assert redis_client.zcard(keys.recent("BTCUSDT", "1s")) == 9


@pytest.fixture(scope="module")
def counting_client() -> Iterator[redis.Redis]:
    """A client of a Valkey of this module's own: INFO counts the whole server, so nothing else may use it
    (make test runs the browser tests beside these, on the shared server)."""
    from backend.embedded import EmbeddedValkey

    server = EmbeddedValkey()
    client = redis.Redis.from_url(server.url)
    yield client
    client.close()
    server.stop()


def commands_for(redis_client: redis.Redis, pub: RedisSink, candles: list[Candle]) -> int:
    before = total_commands(redis_client)
    pub.put(candles)
    return total_commands(redis_client) - before - 1  # the INFO call itself


def total_commands(client: redis.Redis) -> int:
    return int(client.info("stats")["total_commands_processed"])


def test_redis_commands_per_flush_depend_only_on_the_changed_streams(counting_client, settings):
    redis_client = counting_client
    pub = publisher(redis_client, settings)
    pub.put([])  # nothing changed: no round trip at all

    def forming(symbols: int, updates_each: int) -> list[Candle]:
        agg = Aggregator(["1m"], emit_ms=0)
        out = []
        for u in range(updates_each):
            agg.add(TradeBatch.from_trades([Trade(f"S{s}USDT", 1.0 + u, 1.0, T0 + u, u) for s in range(symbols)]))
            out.extend(agg.drain(u))
        return out

    pub.put(forming(10, 1))  # first sight of the symbols (one SADD) is out of the way
    one_update = commands_for(redis_client, pub, forming(10, 1))
    many_updates = commands_for(redis_client, pub, forming(10, 50))
    assert one_update == many_updates == 10 + 1  # a SET per changed stream, one PUBLISH
    assert commands_for(redis_client, pub, forming(20, 3)) == 20 + 1 + 1  # + SADD for the new symbols


def test_closed_candles_survive_a_redis_outage(settings):
    from backend.embedded import EmbeddedValkey

    server = EmbeddedValkey()
    client = redis.Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
    pub = publisher(client, settings)
    assert pub.stats() == {"redis_ok": True, "redis_errors": 0, "publish_receivers": None, "publish_unheard": 0}
    assert pub.healthy is True
    agg = Aggregator(["1s"], emit_ms=0)
    batches = trades(12, symbols=("BTCUSDT",), step_ms=1_000)
    for i, batch in enumerate(batches[:4]):
        agg.add(batch)
        assert pub.put(agg.drain(i))
    assert pub.stats() == {"redis_ok": True, "redis_errors": 0, "publish_receivers": 0, "publish_unheard": 4}
    assert (pub.flushes, pub.published, pub.errors) == (4, 7, 0)  # 3 closes and 4 forming updates
    server.stop()
    for i, batch in enumerate(batches[4:8]):
        agg.add(batch)
        assert not pub.put(agg.drain(10 + i))
    assert pub.healthy is False
    assert pub.stats() == {"redis_ok": False, "redis_errors": 4, "publish_receivers": 0, "publish_unheard": 4}
    assert (pub.flushes, pub.published) == (4, 7)
    again = EmbeddedValkey(port=server.port, password=server.password)  # where the client expects it
    try:
        for i, batch in enumerate(batches[8:]):
            agg.add(batch)
            assert pub.put(agg.drain(20 + i))
        assert pub.healthy is True
        assert pub.stats() == {"redis_ok": True, "redis_errors": 4, "publish_receivers": 0, "publish_unheard": 8}
        assert (pub.flushes, pub.published) == (8, 7 + 4 + 4 + 4)  # 4 kept closes, then 4 closes and 4 updates
        recent = client.zrange(CacheKeys(settings.redis_prefix).recent("BTCUSDT", "1s"), 0, -1)
        # the restarted server is empty (no persistence); what closed during the outage was kept and delivered
        assert [decode_message(m).open_time for m in recent] == [T0 + i * 1_000 for i in range(3, 11)]
    finally:
        client.close()
        again.stop()


def test_the_symbol_set_is_rebuilt_after_redis_comes_back_empty(settings):
    from backend.embedded import EmbeddedValkey

    server = EmbeddedValkey()
    client = redis.Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
    pub = publisher(client, settings)
    agg = Aggregator(["1m"], emit_ms=0)
    batches = trades(3, symbols=("BTCUSDT",))
    agg.add(batches[0])
    assert pub.put(agg.drain(0))
    server.stop()
    agg.add(batches[1])
    assert not pub.put(agg.drain(1))
    again = EmbeddedValkey(port=server.port, password=server.password)
    try:
        agg.add(batches[2])
        assert pub.put(agg.drain(2))
        assert client.smembers(CacheKeys(settings.redis_prefix).symbols) == {b"BTCUSDT"}
    finally:
        client.close()
        again.stop()


WIRE_FIELDS = [
    "type", "symbol", "interval", "open_time", "close_time", "open", "high", "low", "close", "volume",
    "quote_volume", "trades", "taker_buy_volume", "taker_buy_quote_volume", "closed", "seq", "event_time",
    "emitted_at",
]  # fmt: skip


def test_keys_ttl_and_wire_shapes_are_the_documented_ones(redis_client):
    """DESIGN.md's Redis contract, read back with raw commands and literal names (not through ``CacheKeys``)."""

    prefix = f"contract{time.monotonic_ns()}"
    channel = f"{prefix}:updates"
    sub = Subscriber(redis_client, channel)
    pub = RedisSink(redis_client, keys=CacheKeys(prefix), channel=channel)  # the default TTL: a day, in seconds
    one = Candle(
        symbol="BTCUSDT", interval="1m", open_time=T0, close_time=T0 + 59_999, open=1.5, high=2.5, low=1.0,
        close=2.0, volume=3.0, quote_volume=6.0, trades=4, taker_buy_volume=1.0, taker_buy_quote_volume=2.0,
        closed=True, seq=7, event_time=T0 + 12_345,
    )  # fmt: skip
    assert pub.put([one])
    assert sub.candles(1) == [one]
    assert len(sub.messages) == 1
    published = json.loads(sub.messages[0])
    assert isinstance(published, list) and len(published) == 1  # a one-candle PUBLISH is an array too
    assert list(published[0]) == WIRE_FIELDS
    assert published[0]["type"] == "candle" and published[0]["open_time"] == 1_732_665_600_000

    latest_key = f"{prefix}:latest:BTCUSDT:1m"
    assert json.loads(redis_client.get(latest_key))["seq"] == 7
    assert 86_390 <= redis_client.ttl(latest_key) <= 86_400
    recent_key = f"{prefix}:recent:BTCUSDT:1m"
    assert redis_client.zrange(recent_key, 0, -1, withscores=True) == [(redis_client.get(latest_key), float(T0))]
    assert redis_client.smembers(f"{prefix}:symbols") == {b"BTCUSDT"}
    assert sorted(redis_client.keys(f"{prefix}:*")) == sorted(
        k.encode() for k in (latest_key, recent_key, f"{prefix}:symbols")
    )


def test_a_closed_candle_written_again_with_changed_data_replaces_the_old_one(redis_client, settings):
    """A retry or replay that rewrites a closed candle leaves one entry per open_time, the newest data."""
    pub = publisher(redis_client, settings)
    recent_key = f"{settings.redis_prefix}:recent:BTCUSDT:1s"
    first = [
        Candle(symbol="BTCUSDT", interval="1s", open_time=T0 + i * 1_000, close_time=T0 + i * 1_000 + 999,
               open=1.0, high=1.0, low=1.0, close=1.0, volume=1.0, quote_volume=1.0, trades=1, taker_buy_volume=0.0,
               taker_buy_quote_volume=0.0, closed=True, seq=i, event_time=T0 + i * 1_000, emitted_at=1)
        for i in range(3)
    ]  # fmt: skip
    assert pub.put(first)
    again = [msgspec_replace(c, close=9.0, emitted_at=2) for c in first[1:]]
    assert pub.put(again)
    stored = [decode_message(m) for m in redis_client.zrange(recent_key, 0, -1)]
    assert [(c.open_time, c.close, c.emitted_at) for c in stored] == [
        (T0, 1.0, 1),
        (T0 + 1_000, 9.0, 2),
        (T0 + 2_000, 9.0, 2),
    ]


def msgspec_replace(candle: Candle, **changes: object) -> Candle:
    return msgspec.structs.replace(candle, **changes)


def test_an_exchange_candle_for_an_older_period_after_newer_ones_replaces_only_its_own(redis_client, settings):
    """A flush may carry a period the clock closed and, after it, an exchange's final candle for an older one:
    each period keeps one entry, the ones between are left alone, and ``latest`` stays the newest period."""
    pub = publisher(redis_client, settings)
    prefix = settings.redis_prefix
    flat = [one_second(i, close=1.0, closed=True) for i in range(5)]  # the pipeline's flat candles of an outage
    assert pub.put(flat)
    assert pub.put([one_second(5, close=1.0, closed=True), one_second(2, close=7.0, closed=True),
                    one_second(6, close=2.0, closed=False), one_second(0, close=6.0, closed=True)])  # fmt: skip
    stored = [decode_message(m) for m in redis_client.zrange(f"{prefix}:recent:BTCUSDT:1s", 0, -1)]
    assert [(c.open_time - T0, c.close) for c in stored] == [
        (0, 6.0), (1_000, 1.0), (2_000, 7.0), (3_000, 1.0), (4_000, 1.0), (5_000, 1.0),
    ]  # fmt: skip
    latest = decode_message(redis_client.get(f"{prefix}:latest:BTCUSDT:1s"))
    assert (latest.open_time - T0, latest.close, latest.closed) == (6_000, 2.0, False)


def test_a_flush_of_only_an_older_periods_final_candle_leaves_latest_on_the_newer_one(redis_client, settings):
    """An exchange's final candle for an older period may come in a flush of its own, after the newer period was
    written: ``recent`` takes it, ``latest`` stays the newer period; a later update of the newer one is written."""
    pub = publisher(redis_client, settings)
    prefix = settings.redis_prefix
    assert pub.put([one_second(3, close=1.0, closed=True), one_second(4, close=2.0, closed=False)])
    assert pub.put([one_second(1, close=9.0, closed=True)])
    latest = decode_message(redis_client.get(f"{prefix}:latest:BTCUSDT:1s"))
    assert (latest.open_time - T0, latest.close) == (4_000, 2.0)
    stored = [decode_message(m) for m in redis_client.zrange(f"{prefix}:recent:BTCUSDT:1s", 0, -1)]
    assert [(c.open_time - T0, c.close) for c in stored] == [(1_000, 9.0), (3_000, 1.0)]
    eth = msgspec_replace(one_second(2, close=5.0, closed=False), symbol="ETHUSDT")
    assert pub.put([one_second(2, close=8.0, closed=True), eth])  # skipping one stream's latest skips only its own
    assert decode_message(redis_client.get(f"{prefix}:latest:ETHUSDT:1s")).close == 5.0
    assert pub.put([one_second(4, close=3.0, closed=False)])  # the same period again: written
    latest = decode_message(redis_client.get(f"{prefix}:latest:BTCUSDT:1s"))
    assert (latest.open_time - T0, latest.close) == (4_000, 3.0)


def test_period_runs() -> None:
    assert period_runs([], 1_000) == []
    assert period_runs([0, 1_000, 2_000], 1_000) == [(0, 2_000)]
    assert period_runs([0, 2_000, 3_000, 5_000], 1_000) == [(0, 0), (2_000, 3_000), (5_000, 5_000)]
    assert period_runs([0, 60_000], 60_000) == [(0, 60_000)]


def one_second(i: int, *, close: float, closed: bool) -> Candle:
    return Candle(symbol="BTCUSDT", interval="1s", open_time=T0 + i * 1_000, close_time=T0 + i * 1_000 + 999,
                  open=1.0, high=max(1.0, close), low=1.0, close=close, volume=1.0, quote_volume=1.0, trades=1,
                  taker_buy_volume=0.0, taker_buy_quote_volume=0.0, closed=closed, seq=i + 1,
                  event_time=T0 + i * 1_000, emitted_at=1)  # fmt: skip


def test_resume_states_round_trip_in_one_hash_with_seq_raised_to_the_latest_candle(redis_client, settings):
    """``{prefix}:resume`` holds a field per symbol (MessagePack); a load raises a stream's seq to its cached latest
    candle's (a kill between the two writes), ignores a latest that does not decode, and names unreadable fields."""
    keys = CacheKeys(settings.redis_prefix)
    assert load_resume_states(redis_client, keys) == ([], [])
    save_resume_states(redis_client, keys, [])  # nothing changed: nothing written
    assert redis_client.exists(f"{settings.redis_prefix}:resume") == 0
    btc = SymbolState("BTCUSDT", (T0 + 5, 7), [StreamState("1s", T0, 3), StreamState("1m", -1, 40)])
    eth = SymbolState("ETHUSDT", None, [StreamState("1s", T0, 9)])
    save_resume_states(redis_client, keys, [eth, btc])
    assert sorted(redis_client.hkeys(f"{settings.redis_prefix}:resume")) == [b"BTCUSDT", b"ETHUSDT"]
    redis_client.hset(f"{settings.redis_prefix}:resume", "XRPUSDT", b"\xc1 not msgpack")
    forming = one_second(0, close=1.0, closed=False)
    redis_client.set(f"{settings.redis_prefix}:latest:BTCUSDT:1m", encode_message(msgspec_replace(forming, seq=45)))
    redis_client.set(f"{settings.redis_prefix}:latest:BTCUSDT:1s", encode_message(msgspec_replace(forming, seq=2)))
    redis_client.set(f"{settings.redis_prefix}:latest:ETHUSDT:1s", b"{broken")
    states, bad = load_resume_states(redis_client, keys)
    assert bad == ["XRPUSDT"]
    assert [(s.symbol, s.last_trade, [(x.interval, x.open_time, x.seq) for x in s.streams]) for s in states] == [
        ("BTCUSDT", (T0 + 5, 7), [("1s", T0, 3), ("1m", -1, 45)]),
        ("ETHUSDT", None, [("1s", T0, 9)]),
    ]


def test_a_run_of_closed_candles_is_one_range_and_two_runs_are_two(counting_client, settings):
    redis_client = counting_client
    pub = publisher(redis_client, settings)
    pub.put([one_second(0, close=1.0, closed=True)])  # first sight of the symbol (its SADD) out of the way
    run = [one_second(i, close=1.0, closed=True) for i in range(1, 4)]
    assert commands_for(redis_client, pub, run) == 5  # SET, ZREMRANGEBYSCORE, ZADD, ZREMRANGEBYRANK, PUBLISH
    apart = [one_second(5, close=1.0, closed=True), one_second(7, close=1.0, closed=True)]
    assert commands_for(redis_client, pub, apart) == 6  # a range per run: 5..5 and 7..7, never 6


def test_a_periods_last_update_is_latest_and_the_recent_cap_is_1000(redis_client, settings):
    pub = RedisSink(redis_client, keys=CacheKeys(settings.redis_prefix), channel=settings.updates_channel)
    assert pub.recent_cap == 1000  # the documented cap of each recent set
    assert pub.put([]) is True  # nothing to write is a success
    first, second = one_second(8, close=2.0, closed=False), one_second(8, close=3.0, closed=False)
    pub.put([first, msgspec_replace(second, seq=10)])
    latest = decode_message(redis_client.get(f"{settings.redis_prefix}:latest:BTCUSDT:1s"))
    assert (latest.close, latest.seq) == (3.0, 10)


def test_only_symbols_in_our_form_are_served_from_the_symbol_set() -> None:
    members = [b"ETHUSDT", b"BTCUSDT", b"<b>x</b>", b"\xff\xfeBTC", b"btcusdt"]
    assert valid_symbols(members) == ["BTCUSDT", "ETHUSDT"]


def test_a_symbol_is_seen_by_its_set_membership_or_a_latest_candle(redis_client, redis_url, settings):
    import redis.asyncio as aioredis

    keys = CacheKeys(settings.redis_prefix)
    redis_client.set(keys.latest("SOLUSDT", "1m"), b"{}")
    redis_client.sadd(keys.symbols, "XRPUSDT")

    async def seen(symbol: str) -> bool:
        client = aioredis.Redis.from_url(redis_url)
        try:
            return await symbol_seen(client, keys, symbol, ["1s", "1m"])
        finally:
            await client.aclose()

    assert [asyncio.run(seen(s)) for s in ("SOLUSDT", "XRPUSDT", "ADAUSDT")] == [True, True, False]

"""The feed's parts one by one, without servers: book, queue, registry, streams, latency, connection state.

Expected values are literals; limits are tested at exactly the limit and one past it.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
import websocket

from backend.backoff import Backoff
from backend.models import AlertEvent, Candle, encode_batch, now_ms
from services.client import RelayClient
from services.feed.book import StreamBook
from services.feed.feed import Feed
from services.feed.latency import Latency
from services.feed.listener import Listener, _describe
from services.feed.queue import Drained, SessionQueue
from services.feed.rest import RestWorker
from services.feed.sessions import SessionRegistry
from services.feed.state import FeedState
from services.feed.status import Connection, FeedStatus
from services.feed.streams import Streams
from tests.dashboard_fixtures import T0, candle
from tests.stack import free_port

BTC = ("BTCUSDT", "1m")
ETH = ("ETHUSDT", "1m")
SOL = ("SOLUSDT", "1m")
MINUTE = 60_000


def update(c: Candle, **changes: Any) -> Candle:
    return msgspec.structs.replace(c, **changes)


def minutes(rows: list[Candle]) -> list[int]:
    return [(r.open_time - T0) // MINUTE for r in rows]


def alert(n: int) -> AlertEvent:
    return AlertEvent(
        rule_id=n,
        symbol="BTCUSDT",
        interval="1m",
        kind="price_above",
        threshold=1.0,
        value=2.0,
        message=f"alert {n}",
        fired_at=n,
    )


# ---------------------------------------------------------------- StreamBook


def test_a_new_book_is_empty_unloaded_and_unsynced() -> None:
    b = StreamBook(BTC, limit=5)
    assert b.stream == BTC and b.limit == 5
    assert b.rows == [] and b.last is None and b.tail() == []
    assert b.version == 0
    assert b.loaded is False and b.synced is False
    assert b.error is None and b.loaded_at is None
    assert b.apply(candle(0, seq=1)) is True
    assert b.version == 1 and b.last == candle(0, seq=1)


def test_book_last_is_the_newest_row() -> None:
    b = StreamBook(BTC)
    for i in range(3):
        b.apply(candle(i))
    assert b.last == candle(2)


def test_book_inserts_an_older_candle_in_its_place() -> None:
    b = StreamBook(BTC, limit=10)
    for i in (0, 1, 3):
        assert b.apply(candle(i))
    assert b.apply(candle(2)) is True  # newer than the second-newest, older than the newest
    assert minutes(b.rows) == [0, 1, 2, 3]
    assert b.version == 4
    # the open times moved along: a search by open time finds the inserted candle
    assert minutes(b.tail(since_open_time=T0 + 2 * MINUTE)) == [2, 3]
    assert b.apply(update(candle(2), seq=9, close=55.0)) is True
    assert b.rows[2].close == 55.0 and minutes(b.rows) == [0, 1, 2, 3]


def test_book_updates_in_place_by_seq() -> None:
    b = StreamBook(BTC)
    b.apply(candle(0, seq=5))
    b.apply(candle(1, seq=6))
    assert b.apply(update(candle(0), seq=4, close=1.0)) is False, "an older seq never wins"
    assert b.apply(candle(0, seq=5)) is False, "the same candle again changes nothing"
    assert b.version == 2
    same_seq = update(candle(0, seq=5), close=77.0)
    assert b.apply(same_seq) is True, "the same seq with other values: the latest word wins"
    assert b.rows[0] == same_seq
    newer = update(candle(0), seq=7, close=88.0)
    assert b.apply(newer) is True and b.rows[0] == newer
    assert minutes(b.rows) == [0, 1] and b.version == 4


def test_a_full_book_refuses_a_candle_older_than_it_keeps() -> None:
    b = StreamBook(BTC, limit=3)
    for i in (5, 6, 8):
        b.apply(candle(i))
    assert len(b.rows) == 3  # exactly at the limit
    assert b.apply(candle(4)) is False
    assert minutes(b.rows) == [5, 6, 8] and b.version == 3
    assert b.apply(candle(7)) is True, "a candle inside the kept range fills its place"
    assert minutes(b.rows) == [5, 6, 7, 8]


def test_a_book_below_its_limit_takes_an_older_candle() -> None:
    b = StreamBook(BTC, limit=3)
    b.apply(candle(5))
    b.apply(candle(6))
    assert b.apply(candle(4)) is True
    assert minutes(b.rows) == [4, 5, 6]


def test_book_trims_to_its_limit_only_past_limit_plus_64() -> None:
    b = StreamBook(BTC, limit=3)
    for i in range(67):  # limit + 64: no trim yet
        b.apply(candle(i))
    assert len(b.rows) == 67 and minutes(b.rows)[:2] == [0, 1]
    b.apply(candle(67))  # one past: trimmed to the newest three
    assert minutes(b.rows) == [65, 66, 67]
    assert minutes(b.tail(since_open_time=T0 + 66 * MINUTE)) == [66, 67]
    assert b.apply(update(candle(67), seq=100, close=5.0)) is True
    assert minutes(b.rows) == [65, 66, 67] and b.rows[-1].seq == 100
    assert b.version == 69


def test_book_tail() -> None:
    b = StreamBook(BTC)
    for i in range(4):
        b.apply(candle(i))
    assert minutes(b.tail()) == [0, 1, 2, 3]
    assert minutes(b.tail(2)) == [2, 3]
    assert minutes(b.tail(1)) == [3]
    assert minutes(b.tail(since_open_time=T0 + MINUTE)) == [1, 2, 3]
    assert minutes(b.tail(since_open_time=T0 + MINUTE + 1)) == [2, 3]
    assert b.tail() is not b.rows


def test_load_snapshot_sorts_keeps_the_newest_limit_and_replays_live_updates() -> None:
    b = StreamBook(BTC, limit=3)
    b.apply(candle(0))
    b.error = "earlier failure"
    b.begin_snapshot()
    assert b.apply(update(candle(4), seq=50, close=44.0)) is True  # live, while the snapshot is fetched
    before = time.time()
    b.load_snapshot([candle(3), candle(1), candle(4), candle(2)])  # out of order, one more than the limit
    assert minutes(b.rows) == [2, 3, 4]
    assert b.rows[-1].seq == 50 and b.rows[-1].close == 44.0, "the live update is replayed on the snapshot"
    assert b.loaded is True and b.synced is True and b.error is None
    assert b.loaded_at is not None and before <= b.loaded_at <= time.time()
    assert b.version == 4  # two applies, the replayed one, the snapshot
    assert minutes(b.tail(since_open_time=T0 + 3 * MINUTE)) == [3, 4]


def test_load_snapshot_smaller_than_the_limit_keeps_all() -> None:
    b = StreamBook(BTC, limit=5)
    b.load_snapshot([candle(1), candle(0)])
    assert minutes(b.rows) == [0, 1] and b.version == 1
    b.load_snapshot([candle(2)])  # without begin_snapshot: nothing to replay
    assert minutes(b.rows) == [2] and b.version == 2


def test_a_failed_snapshot_forgets_the_live_updates_it_held() -> None:
    b = StreamBook(BTC)
    b.begin_snapshot()
    b.apply(candle(5))
    b.fail_snapshot("HTTP 503")
    assert b.error == "HTTP 503" and b.loaded is False
    b.apply(candle(6))
    b.load_snapshot([candle(0)])
    assert minutes(b.rows) == [0], "updates seen before the failure are not replayed"
    assert b.error is None


def test_merge_snapshot_fills_a_hole_and_replays_live_updates() -> None:
    b = StreamBook(BTC)
    b.load_snapshot([candle(0), candle(1)])
    b.apply(candle(4, seq=10))
    b.synced = False
    b.error = "earlier failure"
    b.loaded_at = None
    b.begin_snapshot()
    b.apply(update(candle(4), seq=11, close=41.0))
    before = time.time()
    b.merge_snapshot([candle(3, seq=4), candle(2, seq=3), update(candle(4), seq=9)])
    assert minutes(b.rows) == [0, 1, 2, 3, 4]
    assert b.rows[-1].seq == 11 and b.rows[-1].close == 41.0
    assert b.synced is True and b.error is None
    assert b.loaded_at is not None and before <= b.loaded_at <= time.time()
    assert b.version == 6  # snapshot 1, live 2, during 3, merged candles 2 and 3 → 5, the merge itself → 6
    assert minutes(b.tail(since_open_time=T0 + 2 * MINUTE)) == [2, 3, 4]


def test_merge_snapshot_without_a_begin_and_loaded_stays() -> None:
    b = StreamBook(BTC)
    b.merge_snapshot([candle(1), candle(0)])
    assert minutes(b.rows) == [0, 1] and b.loaded is False and b.synced is True and b.version == 3


# ---------------------------------------------------------------- Latency


def test_latency_summary_of_nothing() -> None:
    assert Latency().summary() == {"p50": None, "p99": None, "n": 0}


def test_latency_percentiles() -> None:
    lat = Latency()
    now = time.time()
    for v in (40.0, 10.0, 30.0, 20.0):
        lat.add(now, v)
    assert lat.summary() == {"p50": 30.0, "p99": 40.0, "n": 4.0}
    many = Latency()
    for v in range(200, 0, -1):
        many.add(now, float(v))
    assert many.summary() == {"p50": 101.0, "p99": 199.0, "n": 200.0}


def test_latency_window_is_the_last_ten_seconds() -> None:
    lat = Latency()
    now = time.time()
    lat.add(now - 10.6, 500.0)
    lat.add(now - 9.4, 7.0)
    assert lat.summary() == {"p50": 7.0, "p99": 7.0, "n": 1.0}
    assert lat.summary(window_s=60.0, max_age_s=0.0) == {"p50": 500.0, "p99": 500.0, "n": 2.0}


def test_latency_cutoff_is_inclusive() -> None:
    lat = Latency()
    lat.add(100.0, 5.0)
    lat.add(99.0, 6.0)
    assert lat._summary(100.0) == {"p50": 5.0, "p99": 5.0, "n": 1.0}


def test_latency_summary_is_cached_for_half_a_second() -> None:
    lat = Latency()
    first = lat.summary()
    lat.add(time.time(), 12.0)
    assert lat.summary() is first, "asked again at once: the cached summary"
    assert lat._cached is not None
    lat._cached = (time.time() - 0.7, first)  # the cached one is older than half a second
    assert lat.summary() == {"p50": 12.0, "p99": 12.0, "n": 1.0}


# ---------------------------------------------------------------- Connection, FeedStatus, FeedState


def test_connection_came_up_then_down_then_up() -> None:
    c = Connection()
    assert c.state == "connecting" and c.generation == 0 and c.reconnects == 0
    before = time.time()
    assert c.came_up() is False, "the first connection is no reconnect"
    assert c.state == "live" and c.error is None and c.ever_connected is True
    assert c.connected_since is not None and before <= c.connected_since <= time.time()
    assert c.generation == 1 and c.reconnects == 0

    before = time.time()
    c.went_down("connection refused", 3.0)
    after = time.time()
    assert c.state == "down" and c.error == "connection refused" and c.connected_since is None
    assert c.down_since is not None and before <= c.down_since <= after
    assert c.next_attempt_at is not None and before + 3.0 <= c.next_attempt_at <= after + 3.0
    first_down = c.down_since
    c.went_down("timed out", 0.0)
    assert c.down_since == first_down, "still the same outage"
    assert c.error == "timed out" and c.next_attempt_at <= time.time()

    assert c.came_up() is True
    assert c.state == "live" and c.error is None and c.down_since is None and c.next_attempt_at is None
    assert c.connected_since is not None and c.ever_connected is True
    assert c.generation == 2 and c.reconnects == 1
    c.went_down("connection lost", 1.0)
    assert c.down_since is not None and c.down_since != first_down, "a new outage"
    assert c.came_up() is True
    assert c.generation == 3 and c.reconnects == 2


def status_of(state: str) -> FeedStatus:
    return FeedStatus(state, "http://r", None, None, None, 0, 0, 0, 0, 0, 0, None, {}, 0, 0)


def test_feed_status_is_live_only_when_live() -> None:
    assert status_of("live").live is True
    assert status_of("down").live is False
    assert status_of("connecting").live is False


def test_feed_state_wakes_on_its_own_lock() -> None:
    state = FeedState(SessionRegistry(), Streams())
    woken = threading.Event()

    def waiter() -> None:
        with state.lock:
            state.wake.wait_for(woken.is_set, timeout=30)

    with state.lock:  # notify needs the condition's lock: the feed's lock
        state.wake.notify_all()
    t = threading.Thread(target=waiter)
    t.start()
    with state.lock:
        woken.set()
        state.wake.notify_all()
    t.join()
    assert state.connection.state == "connecting" and not state.stop.is_set()


# ---------------------------------------------------------------- Streams


def test_streams_start_empty() -> None:
    s = Streams(7)
    assert s.book_limit == 7 and s.books == {} and s.seq == {} and s.snapshot_due == {}
    assert Streams().book_limit == 1000


def test_streams_follow_opens_and_drops_books() -> None:
    s = Streams(7)
    s.follow({BTC, ETH}, {BTC, ETH})
    assert set(s.books) == {BTC, ETH}
    book = s.books[BTC]
    assert book.stream == BTC and book.limit == 7 and isinstance(book, StreamBook)
    s.seq[BTC] = 4
    s.snapshot_due[BTC] = 7
    s.follow({BTC, ETH}, {BTC})
    assert s.books[BTC] is book, "a stream followed again keeps its book"
    s.follow({SOL}, {SOL})  # ETH has no seq and no snapshot due
    assert set(s.books) == {SOL} and s.seq == {} and s.snapshot_due == {}
    assert s.books[SOL].stream == SOL


def test_streams_unsync_marks_every_book() -> None:
    s = Streams()
    s.follow({BTC, ETH}, {BTC, ETH})
    for b in s.books.values():
        b.synced = True
    s.unsync()
    assert [b.synced for b in s.books.values()] == [False, False]


def test_streams_due_the_larger_request_wins_and_is_taken_once() -> None:
    s = Streams(100)
    s.follow({BTC, ETH}, {BTC, ETH})
    s.due({BTC}, 5)
    s.due({BTC, SOL}, 3)  # SOL has no book: nothing to fetch
    s.due({ETH: 8, BTC: 2}, None)  # each stream's own count
    assert s.take_due() == {BTC: 5, ETH: 8}
    assert s.take_due() == {}
    s.due({BTC}, 0)
    assert s.take_due() == {BTC: 0}


def test_patch_size_of_an_unloaded_or_empty_book_is_the_whole_book() -> None:
    s = Streams(100)
    b = StreamBook(BTC)
    assert s.patch_size(b, candle(3)) == 100
    b.apply(candle(0))  # rows, but never a snapshot
    assert s.patch_size(b, candle(3)) == 100
    loaded_empty = StreamBook(BTC)
    loaded_empty.load_snapshot([])
    assert s.patch_size(loaded_empty, candle(3)) == 100


def test_patch_size_is_the_hole_plus_five_capped_at_the_book() -> None:
    s = Streams(100)
    b = StreamBook(BTC)
    b.load_snapshot([candle(0)])
    assert s.patch_size(b, candle(3)) == 8
    assert s.patch_size(b, candle(0)) == 5, "a gap on the newest candle itself"
    assert s.patch_size(b, candle(95)) == 100
    assert s.patch_size(b, candle(94)) == 99


def test_patch_size_counts_steps_of_the_candles_interval() -> None:
    s = Streams(1000)
    b = StreamBook(("BTCUSDT", "1s"))
    b.load_snapshot([candle(0, interval="1s")])
    assert s.patch_size(b, candle(500, interval="1s")) == 505


def test_patch_size_of_a_candle_without_length_counts_milliseconds() -> None:
    s = Streams(1000)
    b = StreamBook(BTC)
    b.load_snapshot([candle(0)])
    flat = update(candle(0), open_time=T0 + 300, close_time=T0 + 299)  # no length: a step of one millisecond
    assert s.patch_size(b, flat) == 305


# ---------------------------------------------------------------- SessionRegistry


def test_registry_add_want_and_remove() -> None:
    reg = SessionRegistry()
    a, b = SessionQueue("a"), SessionQueue("b")
    reg.add(a)
    reg.add(b)
    assert len(reg) == 2 and reg.all() == [a, b]
    assert reg.want(a, frozenset({BTC, ETH}), stats=True, page="overview") is True
    assert reg.want(b, frozenset({BTC}), stats=False, page="") is True
    assert a.streams == {BTC, ETH} and a.wants_stats is True and a.page == "overview"
    assert b.wants_stats is False and b.page == ""
    assert reg.watchers == {BTC: {a, b}, ETH: {a}}
    assert reg.desired() == {BTC, ETH} and reg.wants_stats() is True

    assert reg.want(a, frozenset({BTC, ETH}), stats=False, page="") is False, "the same streams"
    assert a.page == "overview", "no page named: the page stays"
    assert a.wants_stats is False and reg.wants_stats() is False
    assert reg.want(a, frozenset({ETH, SOL}), stats=False, page="candles") is True
    assert a.page == "candles" and a.streams == {ETH, SOL}
    assert reg.watchers == {BTC: {b}, ETH: {a}, SOL: {a}}

    a.wants_stats = True
    assert reg.remove(a) is True
    assert a.streams == frozenset() and a.wants_stats is False
    assert reg.watchers == {BTC: {b}, ETH: set(), SOL: set()}
    assert reg.desired() == {BTC}
    reg.prune()
    assert reg.watchers == {BTC: {b}}
    assert reg.remove(a) is False, "not registered any more"
    assert len(reg) == 1 and reg.all() == [b]


def test_registry_remove_of_a_stranger() -> None:
    reg = SessionRegistry()
    q = SessionQueue("x")
    q.streams = frozenset({BTC})  # set without the registry
    assert reg.remove(q) is False
    assert q.streams == {BTC}
    reg.add(q)
    assert reg.remove(q) is True and q.streams == frozenset()


def test_registry_want_tolerates_streams_it_never_registered() -> None:
    reg = SessionRegistry()
    q = SessionQueue("x")
    q.streams = frozenset({BTC})  # set without the registry
    reg.add(q)
    assert reg.want(q, frozenset({ETH}), stats=False, page="") is True
    assert reg.watchers == {ETH: {q}}


def test_registry_holds_only_open_registered_queues() -> None:
    reg = SessionRegistry()
    q, other = SessionQueue("q"), SessionQueue("o")
    reg.add(q)
    assert reg.holds(q) is True
    assert reg.holds(other) is False
    q.close()
    assert reg.holds(q) is False


def test_registry_prune_keeps_watched_streams() -> None:
    reg = SessionRegistry()
    q = SessionQueue("q")
    reg.add(q)
    reg.want(q, frozenset({BTC, ETH}), stats=False, page="")
    reg.want(q, frozenset({BTC}), stats=False, page="")
    reg.prune()
    assert reg.watchers == {BTC: {q}}


def test_registry_marks_resync_of_one_stream_and_reconnects() -> None:
    reg = SessionRegistry()
    a, b, c = SessionQueue("a"), SessionQueue("b"), SessionQueue("c")
    for q in (a, b, c):
        reg.add(q)
    reg.want(a, frozenset({BTC, ETH}), stats=False, page="")
    reg.want(b, frozenset({ETH}), stats=False, page="")
    reg.mark_resync(BTC)
    reg.mark_resync(SOL)  # nobody watches it
    assert a.drain().resync == {BTC}
    assert b.drain().resync == frozenset()
    reg.mark_reconnected()
    da, db, dc = a.drain(), b.drain(), c.drain()
    assert da.reconnected is True and da.resync == {BTC, ETH}
    assert db.reconnected is True and db.resync == {ETH}
    assert dc.reconnected is True and dc.resync == frozenset()


# ---------------------------------------------------------------- SessionQueue


def test_a_queue_holds_at_least_one_candle() -> None:
    with pytest.raises(ValueError, match=r"^a session queue holds at least one candle$"):
        SessionQueue("s", 0)
    q = SessionQueue("s", 1)
    q.put(candle(0))
    q.put(candle(1))
    out = q.drain()
    assert minutes(out.candles) == [1] and out.dropped == 1 and out.resync == {BTC}


def test_a_new_queue() -> None:
    before = time.time()
    q = SessionQueue("session-0123456789")
    assert q.session_id == "session-0123456789" and q.maxlen == 2000
    assert before <= q.created_at <= time.time()
    assert q.streams == frozenset() and q.wants_stats is False and q.page == ""
    assert q.closed is False and len(q) == 0
    assert (q.puts, q.coalesced, q.dropped, q.resyncs, q.drains) == (0, 0, 0, 0, 0)
    assert q.last_drain_at is None
    assert q.info() == {
        "session": "session-",
        "page": "",
        "streams": 0,
        "depth": 0,
        "puts": 0,
        "coalesced": 0,
        "dropped": 0,
        "resyncs": 0,
        "drains": 0,
        "idle_s": None,
    }
    out = q.drain()
    assert out == Drained([], frozenset(), False, 0, [])
    assert out.reconnected is False and out.dropped == 0


def test_queue_counters_and_info() -> None:
    q = SessionQueue("abcdefghijkl", maxlen=2)
    q.streams = frozenset({BTC, ETH})
    q.page = "candles"
    q.put_many([candle(0, seq=1), update(candle(0), seq=2), candle(1), candle(2)])
    q.mark_resync([ETH])
    before = time.time()
    q.drain()
    assert q.last_drain_at is not None and before <= q.last_drain_at <= time.time()
    q.put(candle(3))
    q.last_drain_at = time.time() - 100.34
    assert q.info() == {
        "session": "abcdefgh",
        "page": "candles",
        "streams": 2,
        "depth": 1,
        "puts": 5,
        "coalesced": 1,
        "dropped": 1,
        "resyncs": 1,
        "drains": 1,
        "idle_s": 100.3,
    }
    q.drain()
    assert q.drains == 2


def test_queue_coalesces_in_one_batch_and_keeps_what_follows() -> None:
    q = SessionQueue("s")
    c0 = candle(0, seq=1)
    q.put_many([c0, update(c0, seq=2, close=5.0), candle(1, seq=3), candle(0, symbol="ETHUSDT", seq=1)])
    assert q.puts == 4 and q.coalesced == 1 and len(q) == 3
    out = q.drain()
    assert [(c.symbol, c.open_time, c.seq) for c in out.candles] == [
        ("BTCUSDT", T0, 2),
        ("BTCUSDT", T0 + MINUTE, 3),
        ("ETHUSDT", T0, 1),
    ]
    assert out.candles[0].close == 5.0


def test_queue_same_seq_replaces_older_seq_does_not() -> None:
    q = SessionQueue("s")
    c = candle(0, seq=4)
    q.put(c)
    q.put(update(c, close=9.0))  # the same seq again: the latest word
    q.put(update(c, seq=3, close=1.0))  # older: ignored
    (got,) = q.drain().candles
    assert got.close == 9.0 and got.seq == 4
    assert q.coalesced == 2


def test_a_full_queue_drops_the_oldest_and_counts_since_the_drain() -> None:
    q = SessionQueue("s", maxlen=2)
    q.put(candle(0, interval="5m"))
    q.put(candle(0, symbol="ETHUSDT"))
    q.put(update(candle(0, symbol="ETHUSDT"), seq=9))  # an update of a queued candle drops nothing
    assert q.dropped == 0 and len(q) == 2
    q.put(candle(1))
    q.put(candle(2))
    assert q.dropped == 2 and len(q) == 2
    out = q.drain()
    assert minutes(out.candles) == [1, 2]
    assert out.resync == {("BTCUSDT", "5m"), ETH} and out.dropped == 2
    q.put(candle(3))
    out = q.drain()
    assert out.dropped == 0 and out.resync == frozenset() and minutes(out.candles) == [3]
    assert q.dropped == 2


def test_queue_keeps_the_newest_twenty_alerts() -> None:
    q = SessionQueue("s")
    q.put_alerts([alert(i) for i in range(15)])
    q.put_alerts([alert(i) for i in range(15, 25)])
    assert [a.rule_id for a in q.drain().alerts] == list(range(5, 25))
    q.put_alerts([alert(1)])
    assert [a.rule_id for a in q.drain().alerts] == [1]
    assert q.drain().alerts == []


def test_a_closed_queue_takes_no_alerts() -> None:
    q = SessionQueue("s")
    q.close()
    q.put_alerts([alert(1)])
    assert q.drain().alerts == []


def test_mark_resync_counts_and_accumulates() -> None:
    q = SessionQueue("s")
    q.streams = frozenset({BTC, ETH, SOL})
    q.mark_resync([])
    assert q.resyncs == 0, "nothing marked"
    q.mark_resync([BTC])
    q.mark_resync((ETH,))
    assert q.resyncs == 2
    out = q.drain()
    assert out.resync == {BTC, ETH} and out.reconnected is False
    q.mark_resync([], reconnected=True)
    assert q.resyncs == 3
    q.mark_resync([SOL])
    out = q.drain()
    assert out.reconnected is True and out.resync == {SOL}
    q.mark_resync()
    assert q.drain().resync == {BTC, ETH, SOL}
    assert q.drain() == Drained([], frozenset(), False, 0, [])


def test_a_closed_queue_is_empty_and_takes_nothing() -> None:
    q = SessionQueue("s")
    q.streams = frozenset({BTC})
    q.put(candle(0))
    q.mark_resync([BTC])
    calls: list[SessionQueue] = []
    q.on_close(calls.append)
    q.close()
    assert q.closed is True and len(q) == 0 and calls == [q]
    q.put(candle(1))
    q.mark_resync([BTC], reconnected=True)
    assert q.resyncs == 1
    assert q.drain() == Drained([], frozenset(), False, 0, [])


def test_close_runs_every_callback_even_when_one_fails() -> None:
    q = SessionQueue("s")
    calls: list[str] = []

    def bad(_: SessionQueue) -> None:
        calls.append("bad")
        raise RuntimeError("boom")

    q.on_close(bad)
    q.on_close(lambda got: calls.append(got.session_id))
    q.close()
    q.close()
    assert calls == ["bad", "s"]


def test_drained_changed_and_latest() -> None:
    c0, c1 = candle(0, seq=1), candle(1, seq=2)
    e0 = candle(0, symbol="ETHUSDT", seq=3)
    d = Drained([c1, c0, e0], frozenset({SOL}))
    assert d.changed == {BTC, ETH, SOL}
    assert d.latest() == {BTC: c1, ETH: e0}
    again = update(c1, close=3.0)
    assert Drained([c1, again], frozenset()).latest() == {BTC: again}, "equal keys: the later one"
    newer = update(c1, seq=9)
    assert Drained([newer, c1], frozenset()).latest() == {BTC: newer}
    assert Drained([], frozenset()).latest() == {}


# ---------------------------------------------------------------- the listener's frames (no network)


def make_feed(*streams: tuple[str, str], book_limit: int = 50) -> tuple[Feed, SessionQueue]:
    feed = Feed("http://127.0.0.1:9", book_limit=book_limit)
    q = feed.register("session-1")
    feed.want(q, set(streams), page="test")
    for s in streams:
        book = feed.book(s)
        assert book is not None
        book.load_snapshot([])
    return feed, q


def frame(*candles: Candle | AlertEvent) -> bytes:
    return encode_batch(list(candles))


def test_frames_and_candles_are_counted_and_timed() -> None:
    feed, q = make_feed(BTC)
    lst = feed.listener
    assert lst.frames == 0 and lst.candles_in == 0 and lst._last_message_at is None
    before = time.time()
    lst.handle_frame(frame(candle(0, seq=1), candle(1, seq=2), candle(0, symbol="ETHUSDT", seq=1)))
    lst.handle_frame(frame(candle(1, seq=3)))
    assert lst.frames == 2 and lst.candles_in == 4
    assert lst._last_message_at is not None and before <= lst._last_message_at <= time.time()
    assert [c.seq for c in q.drain().candles] == [1, 3]


def test_a_stream_nobody_wants_does_not_stop_the_rest_of_the_frame() -> None:
    feed, q = make_feed(BTC)
    feed.listener.handle_frame(frame(candle(0, symbol="ETHUSDT", seq=1), candle(0, seq=1)))
    assert [c.symbol for c in q.drain().candles] == ["BTCUSDT"]
    assert feed.book(ETH) is None and feed.state.streams.seq == {BTC: 1}


def test_a_followed_stream_without_sessions_still_fills_its_book() -> None:
    feed, q = make_feed(BTC)
    streams = feed.state.streams
    streams.follow({BTC, SOL}, {SOL})  # a book that no session watches
    sol = streams.books[SOL]
    sol.load_snapshot([])
    feed.listener.handle_frame(frame(candle(0, symbol="SOLUSDT", seq=1), candle(0, seq=1)))
    assert minutes(sol.rows) == [0]
    assert [c.symbol for c in q.drain().candles] == ["BTCUSDT"]
    feed.listener.handle_frame(json.dumps({"type": "resync", "reason": "redis_reconnected"}))
    assert sol.synced is False and streams.take_due() == {BTC: 50, SOL: 50}


def test_a_gap_marks_only_its_stream_for_the_sessions() -> None:
    feed, q = make_feed(BTC, ETH)
    other = feed.register("session-2")
    feed.want(other, {ETH})
    feed.listener.handle_frame(frame(candle(0, seq=1), candle(0, symbol="ETHUSDT", seq=1)))
    q.drain()
    other.drain()
    feed.listener.handle_frame(frame(candle(2, seq=3), candle(1, symbol="ETHUSDT", seq=2)))
    assert q.drain().resync == {BTC}
    assert other.drain().resync == frozenset()
    assert feed.book(BTC).synced is False and feed.book(ETH).synced is True
    assert feed.state.streams.take_due() == {BTC: 2 + 5}
    assert feed.listener.gaps == 1


def test_a_restarted_ingest_fetches_the_whole_book_and_counts_on_from_its_seq() -> None:
    feed, q = make_feed(BTC, book_limit=40)
    lst = feed.listener
    lst.handle_frame(frame(candle(0, seq=1), candle(1, seq=2)))
    lst.handle_frame(frame(candle(2, seq=1)))  # a newer candle, seq back to 1
    assert lst.gaps == 1 and feed.state.streams.take_due() == {BTC: 40}
    assert feed.state.streams.seq[BTC] == 1
    lst.handle_frame(frame(candle(2, seq=2)))  # the next of the new count: no gap
    assert lst.gaps == 1 and feed.state.streams.seq[BTC] == 2
    assert feed.book(BTC).last == candle(2, seq=2)
    assert [c.seq for c in q.drain().candles] == [1, 2, 2]


def test_an_old_update_is_dropped_and_the_seq_stays() -> None:
    feed, q = make_feed(BTC)
    lst = feed.listener
    lst.handle_frame(frame(candle(0, seq=1), candle(1, seq=2), candle(1, seq=3)))
    q.drain()
    lst.handle_frame(frame(candle(0, seq=1), candle(1, seq=2)))  # replayed: older, same or older candle
    assert q.drain().candles == [] and lst.gaps == 0
    assert feed.state.streams.seq[BTC] == 3 and feed.book(BTC).last.seq == 3


def test_a_gap_and_a_seq_counted_from_it_in_one_frame() -> None:
    feed, q = make_feed(BTC)
    lst = feed.listener
    lst.handle_frame(frame(candle(0, seq=1)))
    lst.handle_frame(frame(candle(0, seq=4), candle(1, seq=5)))
    assert lst.gaps == 1 and feed.state.streams.seq[BTC] == 5
    assert [c.seq for c in q.drain().candles] == [4, 5]


def test_latency_is_measured_from_emitted_at() -> None:
    feed, _ = make_feed(BTC)
    lst = feed.listener
    lst.handle_frame(frame(update(candle(0, seq=1), emitted_at=0)))  # not stamped: no sample
    assert lst._latency.summary(max_age_s=0) == {"p50": None, "p99": None, "n": 0}
    lst.handle_frame(frame(update(candle(0, seq=2), emitted_at=now_ms() - 5_000)))
    lst.handle_frame(frame(update(candle(0, seq=3), emitted_at=now_ms() + 60_000)))  # a clock ahead: 0, not negative
    got = lst._latency.summary(max_age_s=0)
    assert got["n"] == 2.0 and got["p50"] is not None and got["p99"] is not None
    assert 5_000 <= got["p99"] < 65_000
    assert sorted(ms for _, ms in lst._latency.samples)[0] == 0.0
    (at, _), _ = lst._latency.samples
    assert at <= time.time()


def test_control_messages_are_kept_with_their_type_and_time() -> None:
    feed, q = make_feed(BTC, ETH)
    lst = feed.listener
    before = time.time()
    lst.handle_frame(json.dumps({"type": "resync", "reason": "redis_reconnected"}))
    lst.handle_frame(json.dumps({"type": "notice", "code": "unknown_symbol", "message": "later", "symbols": ["X"]}))
    lst.handle_frame(json.dumps({"type": "resync", "reason": "again"}))
    assert lst.resyncs == 2 and lst.frames == 3
    first = lst.control[0]
    assert set(first) == {"at", "type", "reason"}
    assert first["type"] == "resync" and first["reason"] == "redis_reconnected"
    assert before <= first["at"] <= time.time()
    assert lst.control[1]["type"] == "notice" and lst.control[1]["symbols"] == ["X"]
    assert feed.state.streams.take_due() == {BTC: 50, ETH: 50}
    assert feed.book(BTC).synced is False and feed.book(ETH).synced is False
    assert q.drain().resync == {BTC, ETH}


def test_an_empty_resync_does_nothing() -> None:
    feed, q = make_feed(BTC)
    feed.listener._resync({}, reason="nothing")
    assert feed.book(BTC).synced is True and q.drain().resync == frozenset()
    assert feed.state.streams.take_due() == {}


def test_alerts_go_to_every_session_even_without_streams() -> None:
    feed, q = make_feed(BTC)
    idle = feed.register("idle")  # wants no stream
    feed.listener.handle_frame(frame(alert(1), alert(2)))
    assert [a.rule_id for a in idle.drain().alerts] == [1, 2]
    assert [a.rule_id for a in q.drain().alerts] == [1, 2]
    assert [a.rule_id for a in feed.listener.alerts] == [1, 2]


def test_the_listeners_status() -> None:
    feed, _ = make_feed(BTC)
    other = feed.register("other")
    lst = feed.listener
    conn = feed.state.connection
    conn.came_up()
    conn.came_up()
    conn.attempts = 4
    conn.went_down("connection refused", 5.0)
    lst.handle_frame(frame(update(candle(0, seq=1), emitted_at=now_ms() - 200), update(candle(2, seq=3), emitted_at=0)))
    lst.handle_frame(json.dumps({"type": "resync", "reason": "redis_reconnected"}))
    status = feed.status()
    assert status == FeedStatus(
        state="down",
        relay_url="http://127.0.0.1:9",
        error="connection refused",
        connected_since=None,
        down_since=conn.down_since,
        reconnects=1,
        attempts=4,
        frames=2,
        candles=2,
        gaps=1,
        resyncs=1,
        last_message_at=lst._last_message_at,
        latency_ms=status.latency_ms,
        streams=0,
        sessions=2,
        next_attempt_at=conn.next_attempt_at,
    )
    assert status.down_since is not None and status.next_attempt_at is not None
    assert status.last_message_at is not None
    assert status.latency_ms["n"] == 1.0 and 200 <= (status.latency_ms["p50"] or 0) < 10_000
    assert feed.subscribed() == set() and other.streams == frozenset()


def test_a_new_listener() -> None:
    state = FeedState(SessionRegistry(), Streams())
    lst = Listener(state, "http://127.0.0.1:9")
    assert lst.relay_url == "http://127.0.0.1:9" and lst.token is None and lst.recv_timeout_s == 5.0
    assert lst._backoff == Backoff() and lst._on_connect is None and lst._ws is None
    assert (lst.frames, lst.pongs, lst.candles_in, lst.gaps, lst.resyncs) == (0, 0, 0, 0, 0)
    assert lst.control.maxlen == 50 and lst.alerts.maxlen == 100 and list(lst.control) == []
    assert lst._last_message_at is None and lst.subscribed() == set()
    assert lst.status().latency_ms == {"p50": None, "p99": None, "n": 0}


def test_the_status_of_a_live_connection() -> None:
    feed, _ = make_feed(BTC)
    conn = feed.state.connection
    conn.came_up()
    status = feed.status()
    assert status.state == "live" and status.live is True and status.error is None
    assert status.connected_since is not None and status.connected_since == conn.connected_since
    assert status.down_since is None and status.next_attempt_at is None


def test_close_marks_the_connection_stopped() -> None:
    feed, _ = make_feed(BTC)
    feed.listener.close()
    assert feed.status().state == "stopped"


def test_without_a_connection_subscriptions_only_move_the_books() -> None:
    feed, q = make_feed(BTC)
    feed.want(q, {ETH})
    assert feed.book(BTC) is None and feed.book(ETH) is not None
    assert feed.subscribed() == set()
    assert feed.state.sessions.watchers == {ETH: {q}}
    assert feed.state.streams.take_due() == {}, "snapshots are due when the connection subscribes"


def test_describe_connection_errors() -> None:
    url = "http://127.0.0.1:9"
    assert _describe(ConnectionRefusedError(), url) == "connection refused"
    assert _describe(OSError("[Errno 111] Connection Refused"), url) == "connection refused"
    assert _describe(websocket.WebSocketBadStatusException("no", 401), url) == "the relay refused the token (HTTP 401)"
    assert _describe(websocket.WebSocketBadStatusException("no", 403), url) == "the relay refused the token (HTTP 403)"
    assert _describe(websocket.WebSocketBadStatusException("no", 404), url) == "the relay answered HTTP 404 on /ws"
    assert _describe(TimeoutError(), url) == "timed out"
    assert _describe(websocket.WebSocketTimeoutException(), url) == "timed out"
    assert _describe(OSError("handshake Timed Out"), url) == "timed out"
    assert _describe(OSError("no route to host"), url) == "no route to host"
    assert _describe(OSError(), url) == "OSError"


# ---------------------------------------------------------------- the feed as pages use it (no network)


def test_feed_defaults() -> None:
    feed = Feed("http://127.0.0.1:9")
    assert feed.relay_url == "http://127.0.0.1:9" and feed.queue_size == 2000
    assert feed.client.base_url == "http://127.0.0.1:9" and "authorization" not in feed.client._http.headers
    assert feed.state.streams.book_limit == 1000
    assert feed.rest.client is feed.client and feed.rest.stats_every_s == 1.0
    lst = feed.listener
    assert lst.relay_url == "http://127.0.0.1:9" and lst.token is None and lst.recv_timeout_s == 5.0
    assert (lst._backoff.initial, lst._backoff.maximum) == (0.5, 10.0)
    assert lst._on_connect == feed.rest.refresh_symbols
    assert feed.symbols == [] and feed.intervals == [] and feed.stats is None and list(feed.stats_history) == []
    assert feed.status().state == "connecting"


def test_feed_settings_reach_its_parts() -> None:
    feed = Feed(
        "http://127.0.0.1:9/BOX/",
        "tok",
        book_limit=7,
        queue_size=3,
        backoff_initial=0.2,
        backoff_max=0.8,
        stats_every_s=2.5,
        recv_timeout_s=1.5,
    )
    assert feed.relay_url == "http://127.0.0.1:9/BOX" and feed.client.base_url == "http://127.0.0.1:9/BOX"
    assert feed.client._http.headers["authorization"] == "Bearer tok"
    assert feed.state.streams.book_limit == 7 and feed.rest.stats_every_s == 2.5
    lst = feed.listener
    assert lst.relay_url == "http://127.0.0.1:9/BOX" and lst.token == "tok" and lst.recv_timeout_s == 1.5
    assert (lst._backoff.initial, lst._backoff.maximum) == (0.2, 0.8)
    q = feed.register("abc")
    assert q.session_id == "abc" and q.maxlen == 3 and feed.sessions() == [q]
    feed.want(q, {BTC})
    assert feed.book(BTC).limit == 7
    given = RelayClient("http://127.0.0.1:9")
    assert Feed("http://127.0.0.1:9", client=given).client is given


def test_want_sets_the_page_and_stats_of_a_session() -> None:
    feed = Feed("http://127.0.0.1:9")
    q = feed.register("s")
    feed.want(q, {BTC})
    assert q.wants_stats is False and q.page == "" and q.streams == {BTC}
    feed.want(q, {BTC}, stats=True, page="system")
    assert q.wants_stats is True and q.page == "system"
    assert feed.state.sessions.wants_stats() is True


def test_a_released_session_wants_nothing_more() -> None:
    feed = Feed("http://127.0.0.1:9")
    q = feed.register("s")
    feed.want(q, {BTC})
    feed.release(q)
    assert q.closed is True and feed.sessions() == [] and feed.book(BTC) is None
    feed.want(q, {ETH}, stats=True)
    assert feed.book(ETH) is None and q.wants_stats is False and q.streams == frozenset()
    feed.release(q)  # again: nothing happens


def test_read_runs_under_the_lock_on_a_book() -> None:
    feed, _ = make_feed(BTC)
    feed.listener.handle_frame(frame(candle(0, seq=1), candle(1, seq=2)))
    assert feed.read(BTC, lambda b: len(b.rows)) == 2
    assert feed.read(ETH, lambda b: len(b.rows)) is None


def waiting(cond: threading.Condition) -> bool:
    """True while a thread waits on ``cond`` (the caller holds its lock)."""
    return bool(cond._waiters)  # type: ignore[attr-defined]


def without_waiting(fn: Callable[[], Any], state: FeedState) -> Any:
    """``fn()`` on a thread; its result, or a failure as soon as it waits on the feed's condition."""
    result: list[Any] = []
    t = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    t.start()
    while True:
        with state.lock:
            assert not waiting(state.wake), "it waited"
        t.join(0.001)
        if not t.is_alive():
            (value,) = result
            return value


def test_wait_loaded_returns_at_once_when_it_can() -> None:
    feed = Feed("http://127.0.0.1:9")
    state = feed.state
    q = feed.register("s")
    feed.want(q, {BTC, ETH})
    assert without_waiting(lambda: feed.wait_loaded([], timeout=0), state) is True
    assert without_waiting(lambda: feed.wait_loaded([BTC], timeout=0), state) is False
    feed.book(BTC).load_snapshot([])
    assert without_waiting(lambda: feed.wait_loaded([BTC], timeout=600), state) is True
    assert without_waiting(lambda: feed.wait_loaded([BTC, ETH], timeout=0), state) is False
    assert without_waiting(lambda: feed.wait_loaded([SOL], timeout=0), state) is False
    feed.state.connection.went_down("connection refused", 1.0)
    assert without_waiting(lambda: feed.wait_loaded([ETH], timeout=600), state) is False, "the relay is down"
    feed.listener.close()
    assert without_waiting(lambda: feed.wait_loaded([ETH], timeout=600), state) is False, "stopped"


def test_wait_loaded_wakes_when_the_snapshot_is_merged() -> None:
    feed = Feed("http://127.0.0.1:9")
    q = feed.register("s")
    feed.want(q, {BTC})
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(feed.wait_loaded([BTC], timeout=600)))
    t.start()
    while True:
        with feed.state.lock:
            if waiting(feed.state.wake) or result:
                feed.book(BTC).load_snapshot([candle(0)])
                feed.state.wake.notify_all()
                break
        time.sleep(0.001)
    t.join()
    assert result == [True]


# ---------------------------------------------------------------- the REST worker (nothing answers at its address)


def rest_worker(stats_every_s: float = 1.0) -> tuple[FeedState, RestWorker, str]:
    url = f"http://127.0.0.1:{free_port()}"
    state = FeedState(SessionRegistry(), Streams(50))
    return state, RestWorker(state, RelayClient(url), stats_every_s=stats_every_s), url


def test_a_new_rest_worker() -> None:
    state = FeedState(SessionRegistry(), Streams())
    client = RelayClient("http://127.0.0.1:9")
    rest = RestWorker(state, client)
    assert rest.client is client and rest.stats_every_s == 1.0
    assert rest.symbols == [] and rest.intervals == [] and rest.symbols_error is None
    assert rest.stats is None and list(rest.stats_history) == [] and rest.stats_history.maxlen == 300
    assert rest.snapshots == 0


def test_wait_symbols_returns_at_once_when_it_can() -> None:
    state, rest, _ = rest_worker()
    assert without_waiting(lambda: rest.wait_symbols(0), state) == []
    state.connection.went_down("connection refused", 1.0)
    assert without_waiting(lambda: rest.wait_symbols(600), state) == [], "the relay is down"
    state.connection.state = "stopped"
    assert without_waiting(lambda: rest.wait_symbols(600), state) == [], "stopped"
    rest.symbols = ["BTCUSDT"]
    state.connection.state = "connecting"
    got = without_waiting(lambda: rest.wait_symbols(600), state)
    assert got == ["BTCUSDT"] and got is not rest.symbols


def test_waits_end_at_their_timeout() -> None:
    _, rest, _ = rest_worker()
    assert rest.wait_symbols(0.3) == []
    feed = Feed("http://127.0.0.1:9")
    q = feed.register("s")
    feed.want(q, {BTC})
    assert feed.wait_loaded([BTC], timeout=0.3) is False


def test_wait_symbols_wakes_for_the_first_list_and_for_an_outage() -> None:
    state, rest, _ = rest_worker()
    for outcome in ("symbols", "down"):
        rest.symbols = []
        result: list[list[str]] = []
        t = threading.Thread(target=lambda out=result: out.append(rest.wait_symbols(600)))
        t.start()
        while True:
            with state.lock:
                if waiting(state.wake) or result:
                    if outcome == "symbols":
                        rest.symbols = ["ETHUSDT", "BTCUSDT"]
                    else:
                        state.connection.went_down("connection refused", 1.0)
                    state.wake.notify_all()
                    break
            time.sleep(0.001)
        t.join()
        assert result == [["ETHUSDT", "BTCUSDT"]] if outcome == "symbols" else result == [[]]


def test_symbols_that_cannot_be_fetched_are_retried_in_about_ten_seconds() -> None:
    _, rest, url = rest_worker()
    before = time.time()
    rest._fetch_symbols()
    after = time.time()
    assert rest.symbols_error == f"no relay answers at {url} (connection refused)"
    assert rest.symbols == [] and rest.intervals == []
    assert before - 50 <= rest._symbols_at <= after - 50


def test_a_snapshot_that_cannot_be_fetched_is_an_error_on_its_book() -> None:
    state, rest, url = rest_worker()
    state.streams.follow({BTC}, {BTC})
    book = state.streams.books[BTC]
    rest._fetch_snapshot(ETH, 50)  # no book: nothing to fetch
    rest._fetch_snapshot(BTC, 50)
    assert book.error == f"no relay answers at {url} (connection refused)"
    assert book.loaded is False and rest.snapshots == 0
    book.apply(candle(0))
    book.load_snapshot([])
    assert book.rows == [], "what arrived during the failed fetch is not replayed"


def test_stats_that_cannot_be_fetched_are_a_sample_with_the_error() -> None:
    _, rest, url = rest_worker()
    before = now_ms()
    rest._fetch_stats()
    sample = rest.stats
    assert sample is not None and before <= sample.at_ms <= now_ms()
    assert (sample.stats, sample.ws_stats) == (None, None)
    assert sample.error == f"no relay answers at {url} (connection refused)"
    assert list(rest.stats_history) == [sample]


def run_worker_until(state: FeedState, rest: RestWorker, done: Any) -> None:
    """Run the worker's loop on a thread until ``done()`` holds (a failed fetch wakes nobody: checked often)."""
    t = threading.Thread(target=rest.run, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 60
        with state.lock:
            while not done():
                assert time.monotonic() < deadline, "the worker never got there"
                state.wake.wait(0.01)
    finally:
        state.stop.set()
        with state.lock:
            state.wake.notify_all()
        t.join()


def test_the_worker_fetches_stats_only_every_so_often_and_nothing_else_while_not_live() -> None:
    state, rest, url = rest_worker(stats_every_s=0.05)
    q = SessionQueue("s")
    state.sessions.add(q)
    state.sessions.want(q, frozenset({BTC}), stats=True, page="system")
    state.streams.follow({BTC}, {BTC})
    state.streams.due({BTC}, 50)
    run_worker_until(state, rest, lambda: len(rest.stats_history) >= 3)
    samples = list(rest.stats_history)
    assert [s.error for s in samples[:3]] == [f"no relay answers at {url} (connection refused)"] * 3
    assert all(b.at_ms - a.at_ms >= 47 for a, b in itertools.pairwise(samples))
    assert state.streams.snapshot_due == {BTC: 50}, "no snapshot while the relay is not live"
    assert rest.symbols_error is None and state.streams.books[BTC].error is None


def test_the_live_worker_fetches_symbols_and_snapshots_due() -> None:
    state, rest, url = rest_worker()
    state.connection.came_up()
    state.streams.follow({BTC, ETH}, {BTC, ETH})
    state.streams.due({BTC, ETH}, 50)
    books = state.streams.books
    run_worker_until(state, rest, lambda: books[ETH].error is not None and rest.symbols_error is not None)
    message = f"no relay answers at {url} (connection refused)"
    assert rest.symbols_error == message and books[BTC].error == message and books[ETH].error == message
    assert state.streams.snapshot_due == {} and rest.stats is None


def test_failed_symbols_are_not_fetched_again_at_once() -> None:
    state, rest, url = rest_worker(stats_every_s=0.05)
    state.connection.came_up()
    q = SessionQueue("s")
    state.sessions.add(q)
    state.sessions.want(q, frozenset(), stats=True, page="system")
    run_worker_until(state, rest, lambda: rest.symbols_error is not None)
    first = rest._symbols_at
    state.stop.clear()
    run_worker_until(state, rest, lambda: len(rest.stats_history) >= 4)  # three more turns of the worker
    assert rest._symbols_at == first, "the next try is about ten seconds later"
    assert rest.symbols_error == f"no relay answers at {url} (connection refused)"


def test_the_worker_sleeps_between_stats_samples() -> None:
    state, rest, _ = rest_worker(stats_every_s=0.05)
    q = SessionQueue("s")
    state.sessions.add(q)
    state.sessions.want(q, frozenset(), stats=True, page="system")
    t = threading.Thread(target=rest.run, daemon=True)
    t.start()
    try:
        assert t.ident is not None
        clock = time.pthread_getcpuclockid(t.ident)
        with state.lock:
            assert state.wake.wait_for(lambda: len(rest.stats_history) >= 1, timeout=60)
        cpu0, wall0 = time.clock_gettime(clock), time.monotonic()
        with state.lock:
            assert state.wake.wait_for(lambda: len(rest.stats_history) >= 6, timeout=60)
        cpu, wall = time.clock_gettime(clock) - cpu0, time.monotonic() - wall0
    finally:
        state.stop.set()
        with state.lock:
            state.wake.notify_all()
        t.join()
    assert cpu < wall / 2, f"the worker spun: {cpu:.3f} s of CPU in {wall:.3f} s"


def test_snapshot_turns_do_not_fetch_stats_before_they_are_due() -> None:
    state, rest, _ = rest_worker(stats_every_s=600)
    state.connection.came_up()
    q = SessionQueue("s")
    state.sessions.add(q)
    state.sessions.want(q, frozenset(), stats=True, page="system")
    state.streams.follow({BTC, ETH}, {BTC, ETH})
    books = state.streams.books

    def fetch(stream: tuple[str, str]) -> Any:
        def done() -> bool:
            state.streams.due({stream}, 50)  # a snapshot due at every check: the worker makes another turn
            state.wake.notify_all()
            return books[stream].error is not None

        return done

    run_worker_until(state, rest, fetch(BTC))  # the first turn: symbols, the snapshot, the first stats sample
    assert len(rest.stats_history) == 1
    state.stop.clear()
    run_worker_until(state, rest, fetch(ETH))
    assert len(rest.stats_history) == 1, "the next sample is due in ten minutes"


class RefusingRelay:
    """An HTTP server answering the candles endpoint with ``codes`` in turn (then 200 with one candle)."""

    def __init__(self, codes: list[int]) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.codes = list(codes)
        self.asked: list[float] = []  # monotonic times of the requests
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not self.path.startswith("/api/v1/candles/"):  # the symbol list: not this test's
                    self.send_error(404)
                    return
                relay.asked.append(time.monotonic())
                code = relay.codes.pop(0) if relay.codes else 200
                body = b'{"candles":[' + encode_batch([candle(1)])[1:-1] + b"]}" if code == 200 else b'{"detail":"x"}'
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_snapshot_the_relay_refuses_is_asked_again_with_backoff_without_a_reconnect() -> None:
    """A 503 (the relay's Redis down) leaves the book unloaded with the error, and the worker asks again after
    0.5–1 s, then 1–2 s: the third answer loads it (before, only a gap, a reconnect or a resync asked again)."""
    relay = RefusingRelay([503, 503])
    try:
        state = FeedState(SessionRegistry(), Streams(50))
        rest = RestWorker(state, RelayClient(relay.url))
        state.connection.came_up()
        state.streams.follow({BTC}, {BTC})
        state.streams.due({BTC}, 50)
        run_worker_until(state, rest, lambda: state.streams.books[BTC].loaded)
    finally:
        relay.close()
    first, second, third = relay.asked
    assert second - first >= 0.5 and third - second >= 1.0
    book = state.streams.books[BTC]
    assert [c.open_time for c in book.rows] == [candle(1).open_time] and rest.snapshots == 1
    assert rest._retries == {} and rest._backoffs == {}

"""The SQL sink's spool: what one run leaves is written by the next, a line cut short by a crash is skipped."""

from __future__ import annotations

from backend.sinks.spool import Spool
from backend.sinks.sql import SqlSink
from backend.store import count_candles, make_engine, query_candles
from tests.integration.test_store import closed_candles


def test_a_spool_left_by_a_killed_run_is_written_by_the_next_and_a_cut_line_is_counted(tmp_path):
    path = tmp_path / "spool" / "candles.jsonl"
    candles = closed_candles([(0, t * 1_000, 10.0 + t) for t in range(6)], intervals=("1s",))
    assert len(candles) == 5  # the sixth second is still open
    Spool(path).append(candles)
    with path.open("ab") as f:
        f.write(b'{"type":"candle","symbol":"BTCUSDT","interval":"1s","open_ti')  # the kill came mid-write

    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    sink = SqlSink(engine, spool=Spool(path), interval_s=0.05)
    assert sink.flush(timeout=30)
    assert sink.close(timeout=5) == 0
    assert count_candles(engine) == 5
    assert [c.close for c in query_candles(engine, "BTCUSDT", "1s")] == [10.0, 11.0, 12.0, 13.0, 14.0]
    assert (sink.spool.bad_lines, sink.stats()["db_spooled_at_start"]) == (1, 5)
    assert not path.exists()  # nothing pending: removed at close
    engine.dispose()


def test_candles_still_pending_at_close_stay_in_the_spool_and_close_says_how_many(tmp_path):
    path = tmp_path / "candles.jsonl"
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    engine.dispose()
    (tmp_path / "db.sqlite3").unlink()
    (tmp_path / "db.sqlite3").mkdir()  # a directory where the database file was: every write fails
    sink = SqlSink(engine, spool=Spool(path), interval_s=0.05, max_backoff_s=0.1)
    sink.put(closed_candles([(1, t * 1_000, 5.0) for t in range(4)], intervals=("1s",)))
    assert sink.close(timeout=0.5) == 3
    assert len(path.read_bytes().splitlines()) == 3

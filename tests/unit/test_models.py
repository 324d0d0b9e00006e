"""The wire codec and trade validation, pinned with literal values (DESIGN.md's contracts, not the code's output)."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import numpy as np
import pytest

from backend.models import (
    AlertEvent,
    Candle,
    Rejects,
    Trade,
    TradeBatch,
    decode_batch,
    decode_message,
    encode_batch,
    encode_message,
    join_encoded,
    normalize_symbol,
    trade_problem,
)
from backend.sources.fields import (
    Bad,
    as_float,
    as_int,
    epoch_ms,
    epoch_ms_array,
    flag,
    int_or,
    iso_ms,
    seconds_to_ms,
    taker_buy,
)

NOW = 1_764_460_800_000  # 2025-11-30 00:00 UTC
CANDLE = Candle(
    symbol="BTCUSDT", interval="1m", open_time=1_732_665_600_000, close_time=1_732_665_659_999, open=97000.1,
    high=97010.0, low=96990.5, close=97005.2, volume=12.5, quote_volume=1212512.3, trades=431, taker_buy_volume=6.1,
    taker_buy_quote_volume=591700.2, closed=False, seq=1042, event_time=1_732_665_612_345, emitted_at=1_732_665_612_347,
)  # fmt: skip
# DESIGN.md's example wire message, byte for byte in the documented field order
CANDLE_JSON = (
    '{"type":"candle","symbol":"BTCUSDT","interval":"1m","open_time":1732665600000,"close_time":1732665659999,'
    '"open":97000.1,"high":97010.0,"low":96990.5,"close":97005.2,"volume":12.5,"quote_volume":1212512.3,'
    '"trades":431,"taker_buy_volume":6.1,"taker_buy_quote_volume":591700.2,"closed":false,"seq":1042,'
    '"event_time":1732665612345,"emitted_at":1732665612347}'
)
ALERT = AlertEvent(
    rule_id=7, symbol="BTCUSDT", interval="1m", kind="price_above", threshold=97000, value=97005.2,
    message="BTCUSDT crossed above 97000", fired_at=1_732_665_612_350,
)  # fmt: skip


def test_a_candle_encodes_to_the_documented_object() -> None:
    assert encode_message(CANDLE).decode() == CANDLE_JSON
    assert decode_message(CANDLE_JSON) == CANDLE


def test_an_alert_encodes_to_the_documented_object() -> None:
    assert json.loads(encode_message(ALERT)) == {
        "type": "alert", "rule_id": 7, "symbol": "BTCUSDT", "interval": "1m", "kind": "price_above",
        "threshold": 97000, "value": 97005.2, "message": "BTCUSDT crossed above 97000", "fired_at": 1732665612350,
        "open_time": None,
    }  # fmt: skip


def test_frames_are_arrays_even_of_one_message() -> None:
    assert encode_batch([CANDLE]).decode() == f"[{CANDLE_JSON}]"
    assert join_encoded([encode_message(CANDLE)]).decode() == f"[{CANDLE_JSON}]"
    assert join_encoded([b"1", b"2", b"3"]) == b"[1,2,3]"
    assert join_encoded([]) == b"[]"
    assert decode_batch(f"[{CANDLE_JSON}, {CANDLE_JSON}]") == [CANDLE, CANDLE]
    assert decode_batch(f"  {CANDLE_JSON}".encode()) == [CANDLE]  # an old single-object message is still read


@pytest.mark.parametrize(
    ("raw", "symbol"),
    [
        ("BTCUSDT", "BTCUSDT"),
        (" btc/usdt ", "BTCUSDT"),
        ("BTC-USDT", "BTCUSDT"),
        ("eth_btc", "ETHBTC"),
        ("BTC/USDT:USDT", "BTCUSDT"),
        ("1000PEPEUSDT", "1000PEPEUSDT"),
        ("AB", "AB"),
        ("ABCDEFGHIJKLMNOPQRST", "ABCDEFGHIJKLMNOPQRST"),  # 20: the longest
        ("ABCDEFGHIJKLMNOPQRSTU", None),  # 21
        ("A", None),
        ("BTC$USDT", None),
        ("", None),
    ],
)
def test_symbols_normalise_or_are_refused(raw: str, symbol: str | None) -> None:
    assert normalize_symbol(raw) == symbol


@pytest.mark.parametrize(
    ("price", "qty", "ts", "reason"),
    [
        (1.0, 1.0, NOW, None),
        (math.inf, 1.0, NOW, "bad_price"),
        (-math.inf, 1.0, NOW, "bad_price"),
        (math.nan, 1.0, NOW, "bad_price"),
        (0.0, 1.0, NOW, "bad_price"),
        (-1.0, 1.0, NOW, "bad_price"),
        (5e-324, 1.0, NOW, None),  # the smallest positive price is a price
        (1.0, math.inf, NOW, "bad_qty"),
        (1.0, math.nan, NOW, "bad_qty"),
        (1.0, 0.0, NOW, "bad_qty"),
        (1.0, -0.5, NOW, "bad_qty"),
        (math.nan, math.nan, 0, "bad_price"),  # the first reason wins
        (1.0, 1.0, 1_230_768_000_000, None),  # exactly 2009-01-01
        (1.0, 1.0, 1_230_767_999_999, "ts_too_old"),
        (1.0, 1.0, NOW + 86_400_000, None),  # exactly a day ahead of the clock
        (1.0, 1.0, NOW + 86_400_001, "ts_in_future"),
    ],
)
def test_a_trade_problem_is_named_at_exactly_the_limits(price: float, qty: float, ts: int, reason: str | None) -> None:
    assert trade_problem(price, qty, ts, now=NOW) == reason
    batch = TradeBatch.from_trades([Trade("BTCUSDT", price, qty, ts, 1, "buy")])
    kept = batch.validated(now=NOW)
    assert len(kept) == (1 if reason is None else 0)
    assert batch.rejects.counts == ({} if reason is None else {reason: 1})


def test_validation_counts_each_bad_trade_once_by_its_first_reason_and_keeps_the_rest_in_order() -> None:
    trades = [
        Trade("BTCUSDT", 1.0, 1.0, NOW, 1, "buy"),
        Trade("BTCUSDT", math.inf, 1.0, NOW, 2, "buy"),
        Trade("ETHUSDT", 2.0, 1.0, NOW, 3, "sell"),
        Trade("BTCUSDT", math.nan, math.nan, 1, 4, "buy"),
        Trade("BTCUSDT", 3.0, 0.0, NOW, 5, "buy"),
        Trade("BTCUSDT", 4.0, 1.0, 1, 6, "buy"),
        Trade("BTCUSDT", 5.0, 1.0, NOW + 86_400_001, 7, "buy"),
        Trade("ETHUSDT", 6.0, 2.0, NOW + 86_400_000, 8, "sell", count=3),
    ]
    batch = TradeBatch.from_trades(trades)
    kept = batch.validated(now=NOW).to_trades()
    assert [t.trade_id for t in kept] == [1, 3, 8]
    assert kept[2] == Trade("ETHUSDT", 6.0, 2.0, NOW + 86_400_000, 8, "sell", count=3)
    assert batch.rejects.counts == {"bad_price": 2, "bad_qty": 1, "ts_too_old": 1, "ts_in_future": 1}
    assert batch.rejects.total == 5


def test_a_clean_batch_is_kept_whole_and_an_empty_one_is_fine() -> None:
    batch = TradeBatch.from_trades([Trade("BTCUSDT", 1.0, 1.0, NOW, 1)])
    assert batch.validated(now=NOW) is batch
    empty = TradeBatch.empty()
    assert len(empty.validated(now=NOW)) == 0 and empty.rejects.counts == {}


def test_batches_split_and_take_rows() -> None:
    batch = TradeBatch.from_trades([Trade("BTCUSDT", float(i + 1), 1.0, NOW + i, i) for i in range(5)])
    assert [len(b) for b in batch.split(2)] == [2, 2, 1]
    assert [t.trade_id for t in batch.split(2)[1].to_trades()] == [2, 3]
    assert [t.price for t in batch.take(np.array([4, 0])).to_trades()] == [5.0, 1.0]


def test_rejects_count_by_reason_and_keep_the_first_five_lines() -> None:
    rejects = Rejects()
    assert rejects.summary() == "none" and rejects.total == 0
    for line in range(10, 17):
        rejects.add("bad_price", line=line)
    rejects.add("bad_qty", 3)
    rejects.add("bad_symbol", line=4)
    assert rejects.counts == {"bad_price": 7, "bad_qty": 3, "bad_symbol": 1}
    assert rejects.total == 11
    assert rejects.examples == {"bad_price": [10, 11, 12, 13, 14], "bad_symbol": [4]}
    assert rejects.summary() == "bad_price: 7 (lines 10, 11, 12, 13, 14…); bad_qty: 3; bad_symbol: 1 (lines 4)"


@pytest.mark.parametrize(
    ("ts", "ms"),
    [
        (1_732_665_600_123, 1_732_665_600_123),
        (99_999_999_999_999, 99_999_999_999_999),  # below 10**14: milliseconds
        (100_000_000_000_000, 100_000_000_000),  # from 10**14: microseconds
        (1_732_665_600_123_456, 1_732_665_600_123),
        (99_999_999_999_999_999, 99_999_999_999_999),
        (100_000_000_000_000_000, 100_000_000_000),  # from 10**17: nanoseconds
        (1_732_665_600_123_456_789, 1_732_665_600_123),
    ],
)
def test_epochs_in_ms_us_and_ns(ts: int, ms: int) -> None:
    assert epoch_ms(ts) == ms
    assert epoch_ms_array(np.array([ts, 1_732_665_600_000], dtype=np.int64)).tolist() == [ms, 1_732_665_600_000]


def test_an_epoch_column_in_ms_is_left_alone() -> None:
    column = np.array([1, 99_999_999_999_999], dtype=np.int64)
    assert epoch_ms_array(column) is column
    assert epoch_ms_array(np.array([], dtype=np.int64)).tolist() == []


def test_field_readers() -> None:
    assert seconds_to_ms("1.001") == 1001
    assert seconds_to_ms(" 1732665600.9999 ") == 1_732_665_600_999
    assert seconds_to_ms(Decimal("2")) == 2000
    assert seconds_to_ms(-0.0005) == -1  # floor, not truncation
    assert iso_ms("2024-11-27T00:00:00.123456Z") == 1_732_665_600_123
    assert iso_ms("2024-11-27T01:00:00+01:00") == 1_732_665_600_000
    assert as_float("97000.5") == 97000.5 and as_float(3) == 3.0
    assert as_int("42") == 42 and as_int(7) == 7
    assert int_or("x", 5) == 5 and int_or(None, 6) == 6 and int_or("9", 5) == 9
    assert [flag(v) for v in (True, False, "true", "1", " FALSE ", 0, 1)] == [
        True,
        False,
        True,
        True,
        False,
        False,
        True,
    ]
    assert [taker_buy(v) for v in ("buy", "B", " Sell ", "s", "")] == [True, True, False, False, False]


@pytest.mark.parametrize(
    ("read", "value", "reason"),
    [
        (seconds_to_ms, "abc", "not_numeric"),
        (seconds_to_ms, "inf", "not_numeric"),
        (iso_ms, "yesterday", "bad_time"),
        (iso_ms, "2024-11-27T00:00:00", "bad_time"),  # no zone: ambiguous
        (as_float, "abc", "not_numeric"),
        (as_float, None, "not_numeric"),
        (as_int, True, "not_numeric"),
        (as_int, "1.5", "not_numeric"),
        (as_int, None, "not_numeric"),
        (as_int, math.inf, "not_numeric"),
        (flag, "yes", "bad_side"),
        (taker_buy, "long", "bad_side"),
    ],
)
def test_bad_fields_name_their_reason(read: object, value: object, reason: str) -> None:
    with pytest.raises(Bad) as bad:
        read(value)  # type: ignore[operator]
    assert bad.value.reason == reason


def test_the_clock_is_integer_milliseconds() -> None:
    import time

    from backend.models import now_ms

    before = time.time_ns() // 1_000_000
    got = now_ms()
    after = time.time_ns() // 1_000_000
    assert type(got) is int and before <= got <= after


def test_more_symbol_forms_and_the_default_clock() -> None:
    assert normalize_symbol("ETH/USDT:USDT:X") == "ETHUSDT"  # everything after the first colon is the settlement
    assert trade_problem(1.0, 1.0, 1_764_460_800_000) is None  # the real clock: a plausible time
    assert trade_problem(1.0, 1.0, 9_999_999_999_999) == "ts_in_future"


def test_frames_with_leading_whitespace_and_the_dict_form() -> None:
    from backend.models import candle_to_dict

    assert decode_batch(f"\n [{CANDLE_JSON}] ".encode()) == [CANDLE]
    assert decode_batch(f"\n [{CANDLE_JSON}] ") == [CANDLE]
    as_dict = candle_to_dict(CANDLE)
    assert as_dict == json.loads(CANDLE_JSON) and list(as_dict)[:3] == ["type", "symbol", "interval"]


def test_batch_columns_have_fixed_types_and_sides_round_trip() -> None:
    batch = TradeBatch.from_columns(["XUSDT"], [0], [NOW], [5], [2], [7], [1], [3])
    dtypes = [str(getattr(batch, c).dtype) for c in ("sym", "ts", "price", "qty", "trade_id", "taker_buy", "count")]
    assert dtypes == ["int32", "int64", "float64", "float64", "int64", "bool", "int64"]
    empty = TradeBatch.empty()
    assert empty.symbols == [] and empty.to_trades() == []
    assert [getattr(empty, c).shape for c in ("sym", "ts", "price", "qty", "trade_id", "taker_buy", "count")] == [
        (0,)
    ] * 7
    sides = TradeBatch.from_trades([Trade("XUSDT", 1.0, 1.0, NOW, 1, s) for s in ("buy", "sell", None)])
    assert sides.taker_buy.tolist() == [True, False, False]
    assert [t.taker_side for t in sides.to_trades()] == ["buy", "sell", "sell"]
    assert sides.take(slice(0, 1)).rejects is sides.rejects
    assert str(Bad("bad_side")) == "bad_side"

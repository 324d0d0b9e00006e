"""An aggregator restored from a stored state continues its streams as if it had never stopped."""

from __future__ import annotations

import json

import msgspec
import pytest

from backend.aggregate import Aggregator
from backend.models import Candle, TradeBatch
from backend.streams import SymbolState
from tests.conftest import SAMPLES
from tests.unit.test_aggregate import trade, xrpeth_trades

KLINES = SAMPLES / "binance_xrpeth_2019"


def through_json(states: list[SymbolState]) -> list[SymbolState]:
    """As Redis keeps them: MessagePack bytes and back."""
    return [msgspec.msgpack.decode(msgspec.msgpack.encode(s), type=SymbolState) for s in states]


@pytest.mark.parametrize("cut", [1, 5, 11])
def test_a_restart_replaying_the_whole_file_reproduces_binance_klines_and_continues_seq(cut):
    parts = xrpeth_trades().split(997)
    first = Aggregator(["1m", "5m"])
    before: list[Candle] = []
    for part in parts[:cut]:
        first.add(part)
        before += first.drain(0, force=True)
    states = through_json(first.take_changed_state())  # the process dies here

    second = Aggregator(["1m", "5m"])
    for state in states:
        second.restore(state)
    after: list[Candle] = []
    for part in parts:  # the replay starts again from the top of the file
        second.add(part)
        after += second.drain(0, force=True)
    assert second.already_counted == 997 * cut
    assert second.late == {}

    for interval in ("1m", "5m"):
        closed = [c for c in before + after if c.interval == interval and c.closed]
        got = closed + [c for c in second.open_candles() if c.interval == interval]
        want = json.loads((KLINES / f"XRP_ETH-{interval}.json").read_text())
        assert [(c.open_time, c.open, c.high, c.low, c.close) for c in got] == [tuple(k[:5]) for k in want]
        assert [c.volume for c in got] == pytest.approx([k[5] for k in want], rel=1e-12, abs=1e-12)
        seqs = [c.seq for c in before + after if c.interval == interval]
        assert seqs == list(range(1, len(seqs) + 1))  # no drop back to 1, no repeat


def test_a_stream_restored_with_only_its_seq_opens_a_new_candle_at_the_next_seq():
    agg = Aggregator(["1m"])
    agg.restore(
        msgspec.json.decode(b'{"symbol":"BTCUSDT","last_trade":null,"streams":[["1m",-1,41]]}', type=SymbolState)
    )
    batch = xrpeth_trades().take(slice(0, 3))
    batch.symbols = ["BTCUSDT"]
    agg.add(batch)
    (candle,) = agg.drain(0)
    assert (candle.symbol, candle.seq, candle.trades, candle.closed) == ("BTCUSDT", 42, 3, False)


def test_a_symbol_first_seen_after_a_restore_leaves_the_restored_ones_skipping_what_they_counted() -> None:
    """Restored BTCUSDT counted up to trade 7; ETHUSDT arrives first, then BTCUSDT's replay: 6 and 7 are skipped."""
    agg = Aggregator(["1m"])
    agg.restore(
        msgspec.json.decode(
            b'{"symbol":"BTCUSDT","last_trade":[1732665605000,7],'
            b'"streams":[["1m",1732665600000,3,100.0,101.0,99.0,100.5,2.0,201.0,2,1.0,100.5,'
            b"[1732665601000,6],[1732665605000,7],1732665605000]]}",
            type=SymbolState,
        )
    )
    agg.add(TradeBatch.from_trades([trade("ETHUSDT", 3000.0, 1.0, 1732665606000, 1)]))
    agg.add(
        TradeBatch.from_trades(
            [trade("BTCUSDT", 100.0, 1.0, 1732665601000, 6), trade("BTCUSDT", 100.5, 1.0, 1732665605000, 7),
             trade("BTCUSDT", 102.0, 0.5, 1732665607000, 8)]
        )
    )  # fmt: skip
    assert agg.already_counted == 2
    (btc,) = [c for c in agg.open_candles() if c.symbol == "BTCUSDT"]
    assert (btc.open, btc.high, btc.low, btc.close, btc.volume, btc.trades) == (100.0, 102.0, 99.0, 102.0, 2.5, 3)

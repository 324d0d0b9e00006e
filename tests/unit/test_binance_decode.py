"""The typed Binance event decoder (the ingest hot path) agrees with the capture reader."""

from __future__ import annotations

from backend.models import Rejects
from backend.sources.binance import decode_trade_messages
from backend.sources.formats import read_trades
from tests.conftest import SAMPLES

CAPTURE = SAMPLES / "ws_recordings" / "BINANCE_FUTURES.ws.1.0"


def capture_messages() -> list[bytes]:
    lines = CAPTURE.read_bytes().splitlines()[1:]
    return [line.split(b": ", 1)[1] for line in lines if b"aggTrade" in line or b'"e":"trade"' in line]


def test_decoded_capture_equals_the_replay_reader():
    messages = capture_messages()
    decoded = decode_trade_messages(messages)
    replayed = [t for b in read_trades(CAPTURE, "ws_capture", rejects=Rejects()) for t in b.to_trades()]
    assert len(decoded) > 50
    assert sorted(decoded.to_trades(), key=lambda t: (t.symbol, t.trade_id)) == sorted(
        replayed, key=lambda t: (t.symbol, t.trade_id)
    )


def test_malformed_and_foreign_messages_are_counted_not_raised():
    good = capture_messages()[:3]
    rejects = Rejects()
    batch = decode_trade_messages(
        [good[0], b'{"e":"trade","s":"BTCUSDT","p":"nan"', good[1], b'{"e":"depthUpdate","s":"X"}', good[2]], rejects
    )
    assert len(batch) == 3
    assert rejects.counts == {"malformed_message": 1, "not_a_trade": 1}


def test_unusable_values_are_rejected_by_reason():
    msg = b'{"e":"trade","s":"BTCUSDT","t":%d,"p":"%s","q":"%s","T":%d,"m":true}'
    rejects = Rejects()
    batch = decode_trade_messages(
        [
            msg % (1, b"97000.1", b"0.5", 1_732_665_600_000),
            msg % (2, b"-1", b"0.5", 1_732_665_600_000),
            msg % (3, b"97000.1", b"0", 1_732_665_600_000),
            msg % (4, b"97000.1", b"0.5", 1_000_000_000_000),
            msg % (5, b"97000.1", b"0.5", 9_999_999_999_999),
        ],
        rejects,
    )
    assert [t.trade_id for t in batch.to_trades()] == [1]
    assert rejects.counts == {"bad_price": 1, "bad_qty": 1, "ts_too_old": 1, "ts_in_future": 1}

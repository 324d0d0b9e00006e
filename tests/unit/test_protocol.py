"""The WebSocket client protocol, both ends, pinned to literal wire text (no server needed)."""

from __future__ import annotations

import msgspec
import pytest

from backend.models import AlertEvent, Candle
from backend.protocol import (
    ERROR_CODES,
    MAX_CLIENT_MESSAGE_CHARS,
    SLOW_CLOSE_CODE,
    SLOW_CLOSE_REASON,
    ClientOp,
    Error,
    Pong,
    ProtocolError,
    Resync,
    Subscribed,
    Unsubscribed,
    decode_frame,
    decode_op,
    encode_control,
    encode_op,
    encode_stream_ops,
    op_id_of,
    op_streams,
    split_stream_key,
    stream_key,
    unsubscribe_selection,
)

INTERVALS = ("1s", "1m", "5m")
CANDLE = (
    '{"type":"candle","symbol":"BTCUSDT","interval":"1m","open_time":1732665600000,'
    '"close_time":1732665659999,"open":97000.1,"high":97010.0,"low":96990.5,"close":97005.2,'
    '"volume":12.5,"quote_volume":1212512.3,"trades":431,"taker_buy_volume":6.1,'
    '"taker_buy_quote_volume":591700.2,"closed":false,"seq":1042,"event_time":1732665612345,'
    '"emitted_at":1732665612347}'
)
ALERT = (
    '{"type":"alert","rule_id":7,"symbol":"BTCUSDT","interval":"1m","kind":"price_above",'
    '"threshold":97000,"value":97005.2,"message":"BTCUSDT crossed above 97000","fired_at":1732665612350}'
)


# ---------------------------------------------------------------- the client's side


def test_a_client_encodes_its_ops() -> None:
    assert encode_op("subscribe", ["BTCUSDT", "ETHUSDT"], ["1m"]) == (
        '{"op":"subscribe","symbols":["BTCUSDT","ETHUSDT"],"intervals":["1m"]}'
    )
    assert encode_op("subscribe", ("BTCUSDT",), op_id=1) == '{"op":"subscribe","symbols":["BTCUSDT"],"id":1}'
    assert encode_op("unsubscribe") == '{"op":"unsubscribe"}'
    assert encode_op("unsubscribe", intervals=["5m"], op_id="u1") == '{"op":"unsubscribe","intervals":["5m"],"id":"u1"}'
    assert encode_op("ping", op_id=9) == '{"op":"ping","id":9}'


def test_streams_become_one_op_per_interval_with_sorted_symbols() -> None:
    streams = {("ETHUSDT", "1m"), ("BTCUSDT", "1m"), ("BTCUSDT", "5m")}
    assert encode_stream_ops("subscribe", streams) == [
        '{"op":"subscribe","symbols":["BTCUSDT","ETHUSDT"],"intervals":["1m"]}',
        '{"op":"subscribe","symbols":["BTCUSDT"],"intervals":["5m"]}',
    ]
    assert encode_stream_ops("unsubscribe", []) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type":"subscribed","streams":["BTCUSDT:1m"],"id":1}', Subscribed(["BTCUSDT:1m"], 1)),
        ('{"type":"subscribed","streams":[]}', Subscribed([])),
        ('{"type":"unsubscribed","streams":["BTCUSDT:1m"],"id":"u1"}', Unsubscribed(["BTCUSDT:1m"], "u1")),
        ('{"type":"pong"}', Pong()),
        ('{"type":"pong","id":9}', Pong(9)),
        ('{"type":"resync","reason":"redis_reconnected"}', Resync("redis_reconnected")),
        ('{"type":"error","code":"bad_json","message":"no"}', Error("bad_json", "no")),
        (' {"type":"error","code":"bad_symbol","message":"m","id":3}', Error("bad_symbol", "m", 3)),
    ],
)
def test_a_client_decodes_control_messages(text: str, expected: object) -> None:
    assert decode_frame(text) == expected
    assert decode_frame(text.encode()) == expected


def test_a_client_decodes_data_frames_into_candles_and_alerts() -> None:
    frame = decode_frame(f"[{CANDLE},{ALERT}]")
    assert isinstance(frame, list) and [type(m) for m in frame] == [Candle, AlertEvent]
    candle = frame[0]
    assert isinstance(candle, Candle)
    assert (candle.symbol, candle.interval, candle.seq, candle.close, candle.closed) == (
        "BTCUSDT",
        "1m",
        1042,
        97005.2,
        False,
    )
    assert decode_frame(b"[]") == []  # the snapshot of streams that have no candle yet
    single = decode_frame(CANDLE.encode())  # a bare object is one candle, not a control message
    assert isinstance(single, list) and single[0] == candle


@pytest.mark.parametrize("text", ['{"type":"dance"}', '{"type":"pong","id":[1]}', "nope", '{"type":"error"}'])
def test_a_frame_that_is_neither_raises(text: str) -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_frame(text)


# ---------------------------------------------------------------- the relay's side


def test_the_relay_encodes_control_messages() -> None:
    assert encode_control(Subscribed(["BTCUSDT:1m", "ETHUSDT:1m"], 1)) == (
        '{"type":"subscribed","streams":["BTCUSDT:1m","ETHUSDT:1m"],"id":1}'
    )
    assert encode_control(Unsubscribed([])) == '{"type":"unsubscribed","streams":[]}'
    assert encode_control(Pong()) == '{"type":"pong"}'
    assert encode_control(Pong("p")) == '{"type":"pong","id":"p"}'
    assert encode_control(Resync("redis_reconnected")) == '{"type":"resync","reason":"redis_reconnected"}'
    assert (
        encode_control(Error("unknown_op", "use ping")) == '{"type":"error","code":"unknown_op","message":"use ping"}'
    )
    assert encode_control(Error("bad_json", "x", 0)) == '{"type":"error","code":"bad_json","message":"x","id":0}'


def test_the_relay_decodes_what_a_client_encodes() -> None:
    op = decode_op(encode_op("subscribe", ["btcusdt"], ["1m", "5m"], op_id="s"))
    assert op == ClientOp("subscribe", ["btcusdt"], ["1m", "5m"], "s")
    assert op_streams(op, INTERVALS, required=True) == ["BTCUSDT:1m", "BTCUSDT:5m"]
    assert decode_op('{"op": "ping"}') == ClientOp("ping")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_message"),
        ('{"symbols": ["BTCUSDT"]}', "bad_message"),
        ('{"op": "subscribe", "symbols": "BTCUSDT"}', "bad_message"),
        ('{"op": "subscribe", "id": true}', "bad_message"),
        ('{"op": "dance"}', "unknown_op"),
        ('{"op": "ping", "pad": "' + "x" * MAX_CLIENT_MESSAGE_CHARS + '"}', "too_large"),
    ],
)
def test_malformed_ops_raise_a_protocol_error_with_its_code(text: str, code: str) -> None:
    with pytest.raises(ProtocolError) as err:
        decode_op(text)
    assert err.value.code == code and err.value.code in ERROR_CODES and err.value.message


@pytest.mark.parametrize(
    ("op", "code"),
    [
        (ClientOp("subscribe"), "bad_message"),
        (ClientOp("subscribe", []), "bad_message"),
        (ClientOp("subscribe", ["BTC$USDT"]), "bad_symbol"),
        (ClientOp("subscribe", ["BTCUSDT"], ["7m"]), "bad_interval"),
        (ClientOp("subscribe", ["BTCUSDT"], []), "bad_message"),
    ],
)
def test_invalid_streams_raise_a_protocol_error(op: ClientOp, code: str) -> None:
    with pytest.raises(ProtocolError) as err:
        op_streams(op, INTERVALS, required=True)
    assert err.value.code == code


def test_streams_are_symbols_times_intervals_in_order_without_repeats() -> None:
    op = ClientOp("subscribe", ["ETH/USDT", "BTCUSDT", "ethusdt"], ["5m", "1m"])
    assert op_streams(op, INTERVALS, required=True) == ["ETHUSDT:5m", "ETHUSDT:1m", "BTCUSDT:5m", "BTCUSDT:1m"]
    assert op_streams(ClientOp("subscribe", ["BTCUSDT"]), INTERVALS, required=True) == [
        "BTCUSDT:1s",
        "BTCUSDT:1m",
        "BTCUSDT:5m",
    ]  # no intervals: every interval served
    assert op_streams(ClientOp("unsubscribe"), INTERVALS, required=False) == []


def test_an_unsubscribe_selects_among_the_subscribed_streams() -> None:
    subscribed = {"BTCUSDT:1m", "BTCUSDT:5m", "ETHUSDT:1m"}
    assert unsubscribe_selection(ClientOp("unsubscribe"), subscribed) == ["BTCUSDT:1m", "BTCUSDT:5m", "ETHUSDT:1m"]
    assert unsubscribe_selection(ClientOp("unsubscribe", ["btcusdt"]), subscribed) == ["BTCUSDT:1m", "BTCUSDT:5m"]
    assert unsubscribe_selection(ClientOp("unsubscribe", None, ["1m"]), subscribed) == ["BTCUSDT:1m", "ETHUSDT:1m"]
    assert unsubscribe_selection(ClientOp("unsubscribe", ["XRPUSDT"]), subscribed) == []


@pytest.mark.parametrize(
    ("text", "op_id"),
    [('{"op": "dance", "id": 4}', 4), ('{"id": "a"}', "a"), ('{"id": true}', None), ("[1]", None), ("{", None)],
)
def test_the_id_of_a_rejected_message_is_echoed_when_readable(text: str, op_id: object) -> None:
    assert op_id_of(text) == op_id


def test_stream_keys_and_the_slow_consumer_close() -> None:
    assert stream_key("BTCUSDT", "1m") == "BTCUSDT:1m"
    assert split_stream_key("BTCUSDT:1m") == ("BTCUSDT", "1m")
    assert (SLOW_CLOSE_CODE, SLOW_CLOSE_REASON) == (4008, "slow consumer")

"""Pure checks against hostile input: JSON nesting, secrets in log lines, WebSocket origins."""

from __future__ import annotations

import logging

import pytest

from backend.logs import RedactSecrets, redact
from backend.protocol import ProtocolError, decode_op, json_depth_exceeds, op_id_of
from backend.relay.admission import origin_allowed


@pytest.mark.parametrize(
    ("text", "limit", "exceeds"),
    [
        ('{"op": "ping"}', 1, False),
        ('{"a": [1]}', 1, True),
        ('{"a": [1]}', 2, False),
        ('{"a": "[[[[[[[[["}', 1, False),  # brackets inside strings do not nest
        ('{"a": "\\\\"}', 1, False),  # an escaped backslash ends before the closing quote
        ('{"a": "\\"[[["}', 1, False),  # an escaped quote does not end the string
        ("[" * 9 + "]" * 9, 8, True),
        ("[" * 8 + "]" * 8, 8, False),
        ("[]" * 50, 1, False),  # many siblings, never deep
    ],
)
def test_json_depth(text: str, limit: int, exceeds: bool) -> None:
    assert json_depth_exceeds(text, limit) is exceeds


def test_deep_nesting_is_a_protocol_error_not_a_recursion_error() -> None:
    deep = '{"op": "ping", "pad": ' + '{"a": ' * 1500 + "1" + "}" * 1500 + "}"
    with pytest.raises(ProtocolError) as err:
        decode_op(deep)
    assert err.value.code == "too_large"
    assert err.value.message == "messages are limited to 8 levels of nesting"
    assert op_id_of(deep) is None
    with pytest.raises(ProtocolError) as err:
        decode_op('{"op": "ping", "id": [[1]]}', max_depth=2)
    assert err.value.message == "messages are limited to 2 levels of nesting"
    with pytest.raises(ProtocolError) as err:
        decode_op('{"op": "ping"}', max_chars=10)
    assert (err.value.code, err.value.message) == ("too_large", "messages are limited to 10 characters")


@pytest.mark.parametrize(
    ("line", "clean"),
    [
        ('127.0.0.1:5 - "WebSocket /ws?token=s3cret" [accepted]', '127.0.0.1:5 - "WebSocket /ws?token=***" [accepted]'),
        ("GET /ws/test?a=1&token=s3cret&b=2", "GET /ws/test?a=1&token=***&b=2"),
        ("Authorization: Bearer s3cret", "Authorization: Bearer ***"),
        ("redis://:pw@host password=hunter2", "redis://:***@host password=***"),
        ("postgresql://user:s3cret@db:5432/x", "postgresql://user:***@db:5432/x"),
        ("http://example.com:8000/path", "http://example.com:8000/path"),
        ("no secrets here, tokens=3", "no secrets here, tokens=3"),
    ],
)
def test_redact(line: str, clean: str) -> None:
    assert redact(line) == clean


def test_the_filter_redacts_formatted_arguments() -> None:
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s"', ("peer", "/ws?token=x1"), None
    )
    assert RedactSecrets().filter(record) is True
    assert record.getMessage() == 'peer - "WebSocket /ws?token=***"'


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "relay:8000", frozenset(), True),  # no Origin: not a browser
        ("http://relay:8000", "relay:8000", frozenset(), True),  # the relay's own page (/ws/test)
        ("http://RELAY:8000", "relay:8000", frozenset(), True),
        ("http://relay:8001", "relay:8000", frozenset(), False),  # another port is another origin
        ("http://evil.example", "relay:8000", frozenset(), False),
        ("http://evil.example", None, frozenset(), False),
        ("http://dash.example", "relay:8000", frozenset({"http://dash.example"}), True),
        ("http://dash.example/", "relay:8000", frozenset({"http://dash.example"}), True),
        ("http://dash.example.evil", "relay:8000", frozenset({"http://dash.example"}), False),
        ("null", "relay:8000", frozenset(), False),  # sandboxed frames and file:// pages
        ("http://anything", "relay:8000", frozenset({"*"}), True),
    ],
)
def test_origin_allowed(origin: str | None, host: str | None, allowed: frozenset[str], ok: bool) -> None:
    assert origin_allowed(origin, host, allowed) is ok

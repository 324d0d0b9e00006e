"""The whole stack on the pure-Python fallback server (``CANDLES_EMBEDDED=python``), as on Windows.

``python -m backend run`` with no Redis URL starts the fallback instead of Valkey,
candles flow through it, the System page names it, and a stop leaves no server behind.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from backend.embedded import FALLBACK_LABEL
from tests.stack import ROOT, Server, WsClient, start_stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_stack({"CANDLES_EMBEDDED": "python"}, data_dir=tmp_path_factory.mktemp("fallback-stack"))
    yield server
    server.stop()


def test_run_streams_live_candles_through_the_fallback(stack: Server) -> None:
    with WsClient(stack.ws_url) as ws:
        _ack, snapshot = ws.subscribe(["BTCUSDT"], ["1s"])
        assert snapshot
        assert len(ws.candles(3, timeout=20)) >= 3
    stack.wait_until(lambda: stack.get("/api/v1/stats").json()["ingest"] is not None, 10, "ingest stats")
    assert stack.get("/api/v1/stats").json()["ingest"]["redis_server"] == FALLBACK_LABEL
    assert "single-machine fallback started" in stack.log_path.read_text()


def test_system_page_names_the_fallback(stack: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANDLES_RELAY_URL", stack.url)
    monkeypatch.setenv("CANDLES_AUTOSTART", "0")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.switch_page("pages/system.py")
    try:
        for _ in range(30):
            at.run()
            assert not at.exception, [e.value for e in at.exception]
            if any(FALLBACK_LABEL in c.value for c in at.caption):
                return
            time.sleep(0.5)
        pytest.fail(f"no caption names the fallback: {[c.value for c in at.caption]}")
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()


def test_stopping_the_stack_stops_the_fallback(tmp_path) -> None:
    server = start_stack({"CANDLES_EMBEDDED": "python"}, data_dir=tmp_path)
    server.stop()
    assert server.process.returncode == 0
    assert "embedded Python server stopped" in server.log_path.read_text()

"""Autostart: a local backend only for the local default address, healthy before the app goes on, ended with it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from services.autostart import ensure_relay, is_local_default
from tests.stack import free_port


@pytest.mark.parametrize(
    ("url", "local"),
    [("http://127.0.0.1:8000", True), ("http://localhost:8000/", True), ("http://[::1]:8000", True),
     ("http://127.0.0.1:8001", False), ("http://relay.example:8000", False), ("https://127.0.0.1:8000", False),
     ("http://127.0.0.1:8000/relay", False)],
)  # fmt: skip
def test_only_the_local_default_address_counts(url: str, local: bool) -> None:
    assert is_local_default(url) is local


def test_a_relay_configured_elsewhere_is_never_replaced() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result, backend = ensure_relay(url, None)
    assert backend is None and not result.started
    assert "not the local default" in result.message


def test_autostart_can_be_turned_off() -> None:
    result, backend = ensure_relay(f"http://127.0.0.1:{free_port()}", None, enabled=False)
    assert backend is None and "CANDLES_AUTOSTART=0" in result.message


@pytest.mark.integration
@pytest.mark.slow
def test_starts_the_backend_waits_until_healthy_and_stops_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("CANDLES_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CANDLES_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CANDLES_SYMBOLS", "BTCUSDT")
    url = f"http://127.0.0.1:{free_port()}"  # stands in for the default address
    result, backend = ensure_relay(url, None, local_default=url, log_path=tmp_path / "backend.log")
    assert backend is not None
    try:
        assert result.started and result.error is None, result.error or (tmp_path / "backend.log").read_text()
        assert f"No relay answered at {url}" in result.message and str(result.pid) in result.message
        assert httpx.get(url + "/health", timeout=5).status_code == 200
        deadline = time.monotonic() + 30
        while not httpx.get(url + "/api/v1/symbols", timeout=5).json()["symbols"]:
            assert time.monotonic() < deadline, "no candles from the autostarted backend"
            time.sleep(0.2)
    finally:
        backend.stop()
    assert not backend.alive()
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/health", timeout=2)

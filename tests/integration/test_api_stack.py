"""``python -m backend run`` on its embedded defaults: simulator → ingest → Valkey → relay, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stack import WsClient, start_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_backend_run_serves_live_candles_and_stops_cleanly(tmp_path: Path) -> None:
    """With two relay workers (the default on two cores): their stop comes first, then the ingest's and Valkey's."""
    with start_stack({"CANDLES_WORKERS": "2"}, data_dir=tmp_path, symbols=("BTCUSDT", "ETHUSDT")) as stack:
        stack.wait_until(lambda: len(stack.worker_pids()) == 2, 60, "two relay workers")
        assert stack.get("/api/v1/symbols").json()["symbols"] == ["BTCUSDT", "ETHUSDT"]
        with WsClient(stack.ws_url) as client:
            _, snapshot = client.subscribe(["BTCUSDT"], ["1s"])
            assert [(c["symbol"], c["interval"]) for c in snapshot] == [("BTCUSDT", "1s")]
            updates = client.candles(3, timeout=20)
        assert [c["seq"] for c in updates] == sorted({c["seq"] for c in updates})
        assert all(c["seq"] > snapshot[0]["seq"] for c in updates)
        stack.wait_until(lambda: stack.get("/api/v1/stats").json()["ingest"] is not None, 10, "ingest stats")
        assert stack.get("/api/v1/stats").json()["ingest"]["source"] == "simulator"
    # SIGTERM: the relay shut down, then stopped its ingest child and its embedded Valkey before exiting
    assert stack.process.returncode == 0
    log = stack.log_path.read_text()
    assert "ingest finished" in log and "embedded Valkey stopped" in log


def test_a_relay_whose_free_port_was_taken_meanwhile_starts_on_another(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """free_port() closes the port it found; a process beside the tests may bind it before the relay does."""
    import socket

    from tests import stack

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    ports = iter([taken.getsockname()[1], stack.free_port()])
    monkeypatch.setattr(stack, "free_port", lambda: next(ports))
    try:
        with stack.start_relay(stack.isolated_settings(redis_url, tmp_path), log_dir=tmp_path) as server:
            assert server.get("/health").status_code == 200
            assert server.url != f"http://127.0.0.1:{taken.getsockname()[1]}"
    finally:
        taken.close()

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

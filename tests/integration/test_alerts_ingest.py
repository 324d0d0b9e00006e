"""Alerts end to end on replayed real data: a rule made through the REST API fires in the ingest exactly where
pandas says it must, and each fire reaches a WebSocket subscriber, the SQL table and a local webhook."""

from __future__ import annotations

import json
import threading

import pandas as pd
import pytest
import redis

from backend.ingest import IngestService
from backend.sinks import default_sinks
from backend.sources import open_source
from backend.store import make_engine
from tests.conftest import SAMPLES
from tests.stack import WsClient, start_relay
from tests.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.integration, pytest.mark.slow]

XRP = SAMPLES / "binance_xrpeth_2019"
LEVEL = 0.00149  # XRP/ETH closes wander across it many times in these three days


def exchange_crossings(level: float) -> list[int]:
    """Open times of the 1m candles whose close crossed above ``level`` from the previous close (Binance's klines)."""
    klines = pd.DataFrame(json.loads((XRP / "XRP_ETH-1m.json").read_text())).iloc[:, :5]
    klines.columns = ["open_time", "open", "high", "low", "close"]
    close = klines["close"].astype(float)
    crossed = (close.shift(1) <= level) & (close > level)
    return klines.loc[crossed, "open_time"].astype(int).tolist()


def test_a_rule_fires_on_replayed_trades_exactly_where_the_exchange_candles_cross(redis_client, settings, tmp_path):
    settings = settings.model_copy(
        update={"intervals": ("1m",), "source": f"replay:{XRP / 'XRP_ETH-aggtrades.json.gz'}", "speed": 0.0}
    )
    want = exchange_crossings(LEVEL)
    assert len(want) >= 10
    receiver = WebhookReceiver(fail_first=1)  # the first delivery is retried
    with start_relay(settings, log_dir=tmp_path) as relay, WsClient(relay.ws_url) as viewer:
        created = relay.client.post(
            "/api/v1/alerts/rules",
            json={"symbol": "XRPETH", "kind": "cross_up", "threshold": LEVEL, "frequency": "per_close",
                  "targets": [receiver.url]},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        rule_id = created.json()["id"]
        viewer.send({"op": "subscribe", "alerts": True})
        assert viewer.recv_control("subscribed")["alerts"] is True

        engine = make_engine(settings.effective_database_url())
        source = open_source(settings.source, symbols=None, speed=0.0, seed=None)
        service = IngestService(settings, source, redis_client, default_sinks(settings, redis_client, engine))
        service.run(threading.Event())
        service.close()

        received: list[int] = []
        while len(received) < len(want):
            received += [m["open_time"] for m in viewer.recv(10) if m["type"] == "alert"]
        assert received == want

        events = relay.get("/api/v1/alerts/events", params={"rule_id": rule_id, "limit": 500}).json()["items"]
        assert [e["open_time"] for e in reversed(events)] == want
        assert {e["message"] for e in events} == {"XRPETH crossed above 0.00149"}
        bodies = receiver.wait_for(len(want))
        assert sorted(json.loads(b)["open_time"] for b in bodies) == want
        deliveries = [d for e in events for d in e["deliveries"]]
        assert {d["status"] for d in deliveries} == {"delivered"}
        assert sorted(d["attempts"] for d in deliveries) == [1] * (len(want) - 1) + [2]
        rule = relay.get(f"/api/v1/alerts/rules/{rule_id}").json()
        assert (rule["fire_count"], rule["state"]) == (len(want), "armed")
        stats = {
            k.decode(): json.loads(v) for k, v in redis_client.hgetall(f"{settings.redis_prefix}:stats:ingest").items()
        }
        assert stats["alerts_fired"] == len(want)
        engine.dispose()
    receiver.close()


def test_a_rule_created_while_the_ingest_runs_is_loaded_at_once(redis_url, settings, tmp_path):
    """The relay announces a new rule on Redis; the running ingest's engine loads it (no polling)."""
    from backend.sinks.alerts import AlertSink

    client = redis.Redis.from_url(redis_url)
    engine = make_engine(settings.effective_database_url())
    sink = AlertSink.from_settings(settings, client, engine)
    try:
        with start_relay(settings, log_dir=tmp_path) as relay:
            loads = sink.reloads
            relay.client.post("/api/v1/alerts/rules", json={"symbol": "BTCUSDT", "threshold": 1})
            deadline = threading.Event()
            for _ in range(100):
                if sink.engine.rules:
                    break
                deadline.wait(0.05)
            assert [r.symbol for r in sink.engine.rules.values()] == ["BTCUSDT"]
            assert sink.reloads > loads
    finally:
        sink.close()
        client.close()
        engine.dispose()

"""Alert delivery to a real local webhook receiver: the wire object, retries, timeouts, Apprise."""

from __future__ import annotations

import threading

import msgspec
import pytest

from backend.alerts.delivery import Deliverer
from backend.models import AlertEvent, Delivery
from tests.webhook_receiver import WebhookReceiver

EVENT = AlertEvent(
    rule_id=7,
    symbol="BTCUSDT",
    interval="1m",
    kind="price_above",
    threshold=97000,
    value=97005.2,
    message="BTCUSDT is above 97000",
    fired_at=1732665612350,
    open_time=1732665600000,
)


class Recorder:
    def __init__(self) -> None:
        self.saved: list[tuple[int, list[Delivery]]] = []
        self.final = threading.Event()

    def __call__(self, event_id: int, deliveries: list[Delivery]) -> None:
        self.saved.append((event_id, deliveries))
        if all(d.status != "pending" for d in deliveries):
            self.final.set()


@pytest.mark.integration
def test_a_webhook_receives_the_alert_wire_object() -> None:
    receiver, record = WebhookReceiver(), Recorder()
    deliverer = Deliverer(record)
    try:
        deliverer.submit(42, EVENT, [receiver.url])
        (body,) = receiver.wait_for(1)
        assert record.final.wait(10)
    finally:
        deliverer.close()
        receiver.close()
    assert msgspec.json.decode(body) == {
        "type": "alert",
        "rule_id": 7,
        "symbol": "BTCUSDT",
        "interval": "1m",
        "kind": "price_above",
        "threshold": 97000,
        "value": 97005.2,
        "message": "BTCUSDT is above 97000",
        "fired_at": 1732665612350,
        "open_time": 1732665600000,
    }
    event_id, (delivery,) = record.saved[-1]
    assert (event_id, delivery.status, delivery.attempts, delivery.last_error) == (42, "delivered", 1, None)
    assert delivery.target == receiver.url.replace("s3cr3t-token-value", "s3cr…")


@pytest.mark.integration
def test_a_failing_receiver_is_retried_and_each_attempt_recorded() -> None:
    receiver, record = WebhookReceiver(fail_first=2), Recorder()
    deliverer = Deliverer(record, backoff_s=0.05)
    try:
        deliverer.submit(1, EVENT, [receiver.url])
        assert record.final.wait(10)
    finally:
        deliverer.close()
        receiver.close()
    assert [(d.status, d.attempts, d.last_error) for _, (d,) in record.saved] == [
        ("pending", 1, "HTTP 500"),
        ("pending", 2, "HTTP 500"),
        ("delivered", 3, "HTTP 500"),
    ]
    assert deliverer.stats()["alert_delivery_retries"] == 2


@pytest.mark.integration
def test_a_hanging_receiver_times_out_and_fails_after_every_attempt() -> None:
    receiver, record = WebhookReceiver(hang_s=1.0), Recorder()
    deliverer = Deliverer(record, timeout_s=0.2, attempts=2, backoff_s=0.01)
    try:
        deliverer.submit(5, EVENT, [receiver.url])
        assert record.final.wait(10)
    finally:
        deliverer.close()
        receiver.close()
    _, (d,) = record.saved[-1]
    assert (d.status, d.attempts, d.last_error) == ("failed", 2, "timed out")
    assert deliverer.stats()["alert_deliveries_failed"] == 1


@pytest.mark.integration
def test_a_client_error_is_not_retried() -> None:
    receiver, record = WebhookReceiver(fail_first=5, status=404), Recorder()
    deliverer = Deliverer(record, backoff_s=0.01)
    try:
        deliverer.submit(9, EVENT, [receiver.url])
        assert record.final.wait(10)
    finally:
        deliverer.close()
        receiver.close()
    assert [(d.status, d.attempts, d.last_error) for _, (d,) in record.saved] == [("failed", 1, "HTTP 404")]


@pytest.mark.integration
def test_apprise_json_target_delivers_through_apprise() -> None:
    receiver, record = WebhookReceiver(), Recorder()
    deliverer = Deliverer(record)
    apprise_url = receiver.url.replace("http://", "json://")
    try:
        deliverer.submit(3, EVENT, [apprise_url])
        (body,) = receiver.wait_for(1)
        assert record.final.wait(10)
    finally:
        deliverer.close()
        receiver.close()
    sent = msgspec.json.decode(body)
    assert (sent["title"], sent["message"]) == ("Candlestream alert: BTCUSDT", "BTCUSDT is above 97000")
    assert record.saved[-1][1][0].status == "delivered"

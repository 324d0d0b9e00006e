"""Delivering fired alerts to their targets, on worker threads off the ingest's hot path.

A webhook (``http(s)://``) gets the ``alert`` wire object as a JSON POST with a 3 s timeout; chat and
e-mail targets go through Apprise. A failed attempt (timeout, connection error, 5xx, 408, 429) is retried
with exponential backoff and jitter; every attempt is recorded on the event (status, attempts, last error),
with the target masked: a secret never reaches the log or the database's delivery record.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from backend.alerts.targets import is_webhook, mask
from backend.models import AlertEvent, Delivery, encode_message, now_ms

log = logging.getLogger(__name__)

TIMEOUT_S = 3.0
ATTEMPTS = 4  # the first try and three retries
BACKOFF_S = 0.5  # then 1 s, 2 s (each with up to 25 % jitter)
RETRY_STATUSES = frozenset({408, 425, 429})
Record = Callable[[int, list[Delivery]], None]


class DeliveryFailed(Exception):
    """An attempt failed; ``retry`` says whether another attempt may succeed."""

    def __init__(self, reason: str, *, retry: bool = True) -> None:
        super().__init__(reason)
        self.retry = retry


class Deliverer:
    """A small pool that delivers each fired alert to each of its targets and records how it went."""

    def __init__(
        self,
        record: Record,
        *,
        workers: int = 4,
        timeout_s: float = TIMEOUT_S,
        attempts: int = ATTEMPTS,
        backoff_s: float = BACKOFF_S,
    ) -> None:
        self.record = record
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.http = httpx.Client(timeout=timeout_s, headers={"User-Agent": "candlestream-alerts"})
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="alert-delivery")
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.pending = 0
        self.delivered = 0
        self.failed = 0
        self.retries = 0

    def submit(self, event_id: int, event: AlertEvent, targets: list[str]) -> None:
        if not targets:
            return
        with self._lock:
            self.pending += len(targets)
        self.pool.submit(self._deliver_all, event_id, event, targets)

    def close(self, timeout: float = 10.0) -> None:
        """Finish what is in flight (bounded by the retries' backoff), then stop."""
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stopping.set()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.http.close()

    def stats(self) -> dict[str, int]:
        return {
            "alert_deliveries_pending": self.pending,
            "alert_deliveries_ok": self.delivered,
            "alert_deliveries_failed": self.failed,
            "alert_delivery_retries": self.retries,
        }

    def _deliver_all(self, event_id: int, event: AlertEvent, targets: list[str]) -> None:
        deliveries = [Delivery(target=mask(t)) for t in targets]
        body = encode_message(event)
        for target, delivery in zip(targets, deliveries, strict=True):
            self._deliver(event_id, event, body, target, delivery, deliveries)

    def _deliver(
        self, event_id: int, event: AlertEvent, body: bytes, target: str, d: Delivery, all_: list[Delivery]
    ) -> None:
        for attempt in range(1, self.attempts + 1):
            d.attempts = attempt
            try:
                self._send(event, body, target)
            except DeliveryFailed as exc:
                d.last_error = str(exc)
                final = not exc.retry or attempt == self.attempts or self._stopping.is_set()
                d.status = "failed" if final else "pending"
                self._save(event_id, all_)
                if final:
                    log.warning("alert %d to %s failed after %d attempts: %s", event_id, d.target, attempt, exc)
                    self._done(ok=False)
                    return
                with self._lock:
                    self.retries += 1
                delay = self.backoff_s * 2 ** (attempt - 1)
                self._stopping.wait(delay * (1 + random.random() / 4))
                continue
            d.status, d.delivered_at = "delivered", now_ms()
            self._save(event_id, all_)
            self._done(ok=True)
            return

    def _send(self, event: AlertEvent, body: bytes, target: str) -> None:
        if is_webhook(target):
            try:
                response = self.http.post(target, content=body, headers={"Content-Type": "application/json"})
            except httpx.TimeoutException:
                raise DeliveryFailed("timed out") from None
            except httpx.HTTPError as exc:
                raise DeliveryFailed(f"{type(exc).__name__}: could not connect") from None
            if response.is_success:
                return
            status = response.status_code
            raise DeliveryFailed(f"HTTP {status}", retry=status >= 500 or status in RETRY_STATUSES)
        import apprise  # only chat/e-mail targets need it

        notifier = apprise.Apprise()
        if not notifier.add(target):
            raise DeliveryFailed("Apprise does not understand this URL", retry=False)
        if not notifier.notify(title=f"Candlestream alert: {event.symbol}", body=event.message):
            raise DeliveryFailed("Apprise could not deliver it")

    def _save(self, event_id: int, deliveries: list[Delivery]) -> None:
        try:
            self.record(event_id, [Delivery(**{f: getattr(d, f) for f in d.__struct_fields__}) for d in deliveries])
        except Exception as exc:  # the database may be down: the delivery itself went ahead
            log.warning("could not record the delivery of alert %d: %s", event_id, type(exc).__name__)

    def _done(self, *, ok: bool) -> None:
        with self._lock:
            self.pending -= 1
            if ok:
                self.delivered += 1
            else:
                self.failed += 1

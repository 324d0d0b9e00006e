"""The alert sink: the alert engine evaluated on every flush of the ingest.

On the hot path it only evaluates (:class:`backend.alerts.rules.AlertEngine`, pure); what fires is
handed to a worker thread that stores it (``alert_events``), PUBLISHes it on ``crypto:alerts`` and
hands it to the deliverer (webhooks, Apprise), so a slow receiver or database never slows the candles.
Rules are loaded from SQL and reloaded when the relay announces a change on the rules channel (a Redis
notice, not polling), and again after every reconnect of that subscription in case a notice was missed.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
from collections.abc import Sequence
from typing import Any

import redis
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from backend.alerts import store
from backend.alerts.delivery import Deliverer
from backend.alerts.rules import AlertEngine, Evaluation
from backend.config import Settings
from backend.models import Candle, encode_batch, now_ms

log = logging.getLogger(__name__)

CLOCK_S = 1.0  # wall-clock rules (feed_silent) and expiry are checked this often
RECONNECT_MAX_S = 5.0
MAX_BACKLOG = 10_000  # evaluations waiting for the worker; beyond, the oldest fires are dropped and counted


class AlertSink:
    """Evaluates alert rules on candle updates; stores, publishes and delivers what fires."""

    def __init__(
        self,
        sql: Engine,
        client: redis.Redis,
        *,
        alerts_channel: str,
        rules_channel: str,
        deliverer: Deliverer | None = None,
    ) -> None:
        self.sql = sql
        self.redis = client
        self.alerts_channel = alerts_channel
        self.rules_channel = rules_channel
        self.engine = AlertEngine(started_at=now_ms())
        self.deliverer = deliverer or Deliverer(lambda event_id, d: store.set_deliveries(sql, event_id, d))
        self._lock = threading.Lock()  # the engine is fed by the ingest thread and the clock thread
        self._outbox: queue.Queue[Evaluation | None] = queue.Queue(MAX_BACKLOG)
        self._reload = threading.Event()
        self._stop = threading.Event()
        self.fired = 0
        self.dropped = 0
        self.store_errors = 0
        self.reloads = 0
        self._reload.set()
        self._load_rules()  # clears the flag; it stays set if the database is down, and the clock retries
        self._threads = [
            threading.Thread(target=self._work, name="alerts-worker", daemon=True),
            threading.Thread(target=self._tick, name="alerts-clock", daemon=True),
            threading.Thread(target=self._listen, name="alerts-rules", daemon=True),
        ]
        for t in self._threads:
            t.start()

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis, sql: Engine) -> AlertSink:
        return cls(sql, client, alerts_channel=settings.alerts_channel, rules_channel=settings.alert_rules_channel)

    # ------------------------------------------------------------ the Sink protocol

    def put(self, candles: Sequence[Candle]) -> None:
        """Evaluate the rules of the updated streams (cheap when no rule watches them)."""
        engine = self.engine
        if not engine.rules:
            return
        with self._lock:
            result = engine.on_candles(candles, now_ms())
        if result.events or result.states:
            self._send(result)

    def close(self, timeout: float = 10.0) -> int:
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._outbox.put(None, timeout=timeout / 2)
        for thread in self._threads:  # the clock and the rules listener see the stop within a second
            thread.join(timeout / 2)
        self.deliverer.close(timeout / 2)
        return 0  # candles are not this sink's to keep

    def stats(self) -> dict[str, Any]:
        rules = list(self.engine.rules.values())
        return {
            "alert_rules": len(rules),
            "alert_rules_armed": sum(1 for r in rules if r.state == "armed" and r.enabled),
            "alerts_fired": self.fired,
            "alerts_dropped": self.dropped,
            "alert_store_errors": self.store_errors,
            **self.deliverer.stats(),
        }

    # ------------------------------------------------------------ threads

    def _send(self, result: Evaluation) -> None:
        self.fired += len(result.events)
        try:
            self._outbox.put_nowait(result)
        except queue.Full:
            self.dropped += len(result.events)

    def _work(self) -> None:
        """Store, publish and deliver each evaluation's fires, in order."""
        while True:
            result = self._outbox.get()
            if result is None:
                return
            self._handle(result)

    def _handle(self, result: Evaluation) -> None:
        events = result.events
        targets = {e.rule_id: self.engine.rules[e.rule_id].targets for e in events if e.rule_id in self.engine.rules}
        ids: list[int] = []
        try:
            ids = store.record_fires(self.sql, events, targets)
            store.set_rule_states(self.sql, result.states)
        except SQLAlchemyError as exc:
            self.store_errors += 1
            log.warning("could not store %d alerts (%s); publishing and delivering them anyway", len(events), exc)
        if events:
            try:
                self.redis.publish(self.alerts_channel, encode_batch(events))
            except redis.RedisError as exc:
                log.warning("could not publish %d alerts: %s", len(events), exc)
        for i, event in enumerate(events):
            self.deliverer.submit(ids[i] if ids else 0, event, targets.get(event.rule_id, []))

    def _tick(self) -> None:
        while not self._stop.wait(CLOCK_S):
            if self._reload.is_set():
                self._load_rules()
            with self._lock:
                result = self.engine.on_clock(now_ms())
            if result.events or result.states:
                self._send(result)

    def _load_rules(self) -> None:
        try:
            rules = store.list_rules(self.sql)
        except SQLAlchemyError as exc:
            log.warning("could not load alert rules (%s); retrying", type(exc).__name__)
            return
        with self._lock:
            self.engine.set_rules(rules)
        self._reload.clear()
        self.reloads += 1

    def _listen(self) -> None:
        """Reload the rules on every notice on the rules channel (and after each reconnect)."""
        delay, subscribed_before = 0.2, False
        while not self._stop.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.rules_channel)
                if subscribed_before:
                    self._reload.set()  # a notice may have been missed while disconnected
                subscribed_before, delay = True, 0.2
                while not self._stop.is_set():
                    if pubsub.get_message(timeout=0.5) is not None:
                        self._load_rules()
            except (redis.RedisError, OSError, ValueError):  # ValueError: the client was closed under it
                self._stop.wait(delay * (1 + random.random() / 2))
                delay = min(delay * 2, RECONNECT_MAX_S)
            finally:
                with contextlib.suppress(redis.RedisError):
                    pubsub.close()

"""``GET /metrics``: the relay's Prometheus registry.

With several workers on one port a scrape reaches any one of them, so each answers
for all (:mod:`backend.relay.report`): ``candles_relay_*`` are the totals over every
worker, ``candles_relay_worker_*{worker="HOST:PID"}`` each worker's own figures
(rate these: a total loses a dead worker's counts), ``candles_relay_workers`` how
many report. Figures are read at scrape time (nothing on the hot path); the process
and GC collectors describe the answering process; the request middleware records
HTTP timings here.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, GCCollector, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from backend.relay.bodies import RelayFigures, RelayStats

Figure = tuple[str, str, Callable[[RelayFigures], float]]

GAUGES: tuple[Figure, ...] = (
    ("connections", "open WebSocket connections", lambda f: f.connections),
    ("streams", "streams with at least one subscriber", lambda f: len(f.subscriptions)),
    ("redis_connected", "1 while the Redis subscription is up (in total: on all workers)", lambda f: f.redis.connected),
    ("delay_ms", "publish to relay delay of the last message (in total: the largest)", lambda f: f.last_delay_ms or 0),
)
COUNTERS: tuple[Figure, ...] = (
    ("redis_messages", "Redis messages received", lambda f: f.messages_in),
    ("updates_in", "wire objects received from Redis", lambda f: f.updates_in),
    ("frames_out", "WebSocket data frames sent", lambda f: f.messages_out),
    ("updates_out", "wire objects sent to clients", lambda f: f.updates_out),
    ("coalesced", "updates replaced by a newer one before a slow client got them", lambda f: f.coalesced),
    ("dropped", "updates never delivered (slow clients closed)", lambda f: f.dropped),
    ("slow_disconnects", "clients closed as slow consumers", lambda f: f.slow_disconnects),
    ("invalid_messages", "unreadable Redis messages", lambda f: f.invalid_messages),
    ("redis_reconnects", "Redis subscription reconnects", lambda f: f.redis.reconnects),
)


class Metrics:
    """The registry and the HTTP metrics of one relay process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.relays = RelayCollector()
        self.registry.register(self.relays)
        ProcessCollector(registry=self.registry)  # the answering process's CPU, memory, file descriptors
        GCCollector(registry=self.registry)
        self.http_requests = Counter(
            "candles_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.http_seconds = Histogram(
            "candles_http_request_duration_seconds", "HTTP response time", ["route"], registry=self.registry
        )

    def exposition(self, stats: RelayStats) -> bytes:
        """Everything, in the Prometheus text format, with ``stats`` as the relay figures."""
        self.relays.stats = stats  # read by collect() just below, on this same thread
        return generate_latest(self.registry)


class RelayCollector(Collector):
    """Relay figures for ``/metrics``: the totals, then each worker's, from the stats being exposed."""

    def __init__(self) -> None:
        self.stats: RelayStats | None = None

    def collect(self) -> list[Metric]:
        stats = self.stats
        if stats is None:  # auto_describe at registration: the families, no samples
            return []
        out: list[Metric] = [GaugeMetricFamily("candles_relay_workers", "relay workers reporting", len(stats.workers))]
        for kind, figures in ((GaugeMetricFamily, GAUGES), (CounterMetricFamily, COUNTERS)):
            for name, doc, value in figures:
                out.append(kind(f"candles_relay_{name}", f"{doc}, all workers", value=float(value(stats))))
                family = kind(f"candles_relay_worker_{name}", f"{doc}, per worker", labels=["worker"])
                for w in stats.workers:
                    family.add_metric([w.worker], float(value(w)))
                out.append(family)
        return out

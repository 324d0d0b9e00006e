"""``GET /metrics``: the relay's Prometheus registry.

Relay figures are read from the hub and the subscriber at scrape time (nothing
on the hot path); the process and GC collectors add CPU, memory and file
descriptors; the request middleware records HTTP timings here.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, GCCollector, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from backend.relay.hub import Hub
from backend.relay.subscriber import Subscriber


class Metrics:
    """The registry and the HTTP metrics of one relay process."""

    def __init__(self, hub: Hub, subscriber: Subscriber) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(RelayCollector(hub, subscriber))
        ProcessCollector(registry=self.registry)  # the relay's CPU, memory, file descriptors
        GCCollector(registry=self.registry)
        self.http_requests = Counter(
            "candles_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.http_seconds = Histogram(
            "candles_http_request_duration_seconds", "HTTP response time", ["route"], registry=self.registry
        )

    def exposition(self) -> bytes:
        """Everything, in the Prometheus text format."""
        return generate_latest(self.registry)


class RelayCollector(Collector):
    """Relay figures for ``/metrics``, read from the hub and the subscriber at scrape time."""

    def __init__(self, hub: Hub, subscriber: Subscriber) -> None:
        self.hub = hub
        self.subscriber = subscriber

    def collect(self) -> list[Metric]:
        h = self.hub
        s = self.subscriber
        gauges = (
            ("candles_relay_connections", "open WebSocket connections", len(h.clients)),
            ("candles_relay_streams", "streams with at least one subscriber", len(h.subscribers)),
            ("candles_relay_redis_connected", "1 while the Redis subscription is up", int(s.connected)),
            ("candles_relay_delay_ms", "publish to relay delay of the last message", h.last_delay_ms or 0),
        )
        counters = (
            ("candles_relay_redis_messages", "Redis messages received", h.messages_in),
            ("candles_relay_updates_in", "wire objects received from Redis", h.updates_in),
            ("candles_relay_frames_out", "WebSocket data frames sent", h.messages_out),
            ("candles_relay_updates_out", "wire objects sent to clients", h.updates_out),
            ("candles_relay_coalesced", "updates replaced by a newer one before a slow client got them", h.coalesced),
            ("candles_relay_dropped", "updates never delivered (slow clients closed)", h.dropped),
            ("candles_relay_slow_disconnects", "clients closed as slow consumers", h.slow_disconnects),
            ("candles_relay_invalid_messages", "unreadable Redis messages", h.invalid_messages),
            ("candles_relay_redis_reconnects", "Redis subscription reconnects", s.reconnects),
        )
        out: list[Metric] = [GaugeMetricFamily(n, d, value=v) for n, d, v in gauges]
        out += [CounterMetricFamily(n, d, value=v) for n, d, v in counters]
        return out

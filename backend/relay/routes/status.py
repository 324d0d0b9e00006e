"""``/api/v1/stats``, ``/ws/stats``, ``/health``, ``/metrics`` and ``/ws/test``: what the relay is doing."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from fastapi import APIRouter
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from redis.exceptions import RedisError

from backend import cache
from backend.relay.bodies import HealthBody, RelayStats, StatsBody, encoded_response
from backend.relay.openapi import responses
from backend.relay.state import Relay
from backend.relay.test_page import page_html


async def redis_ok(redis: aioredis.Redis) -> bool:
    """Whether Redis answers a PING within 2 s."""
    try:
        return bool(await asyncio.wait_for(redis.ping(), 2.0))
    except (RedisError, OSError, TimeoutError):
        return False


def router(relay: Relay) -> APIRouter:
    """The status routes of ``relay``."""
    api = APIRouter(tags=["status"])

    health_responses = responses(HealthBody)
    health_responses.pop(401)
    health_responses[503] = {**health_responses[200], "description": "Redis or the database is unreachable"}

    @api.get("/api/v1/stats", responses=responses(StatsBody))
    async def stats() -> Response:
        """The ingest's pipeline figures (from Redis) and this relay's."""
        try:
            ingest = await cache.read_stats(relay.redis, relay.keys, "ingest")
        except RedisError:
            ingest = None
        return encoded_response(StatsBody(ingest, await relay.stats()))

    @api.get("/ws/stats", responses=responses(RelayStats))
    async def ws_stats() -> Response:
        """Connections, subscriptions per stream, messages in/out, slow clients, Redis subscription state:
        in total over every relay worker, and each worker's own."""
        return encoded_response(await relay.stats())

    @api.get("/health", responses=health_responses)
    async def health() -> Response:
        """200 when Redis, the subscription and the database work; 503 "degraded" otherwise."""
        redis_up, db_ok = await asyncio.gather(redis_ok(relay.redis), relay.db.ping())
        sub_ok = relay.subscriber.connected
        ok = redis_up and sub_ok and db_ok
        body = HealthBody("ok" if ok else "degraded", redis_up and sub_ok, db_ok, sub_ok, len(relay.hub.clients))
        return encoded_response(body, 200 if ok else 503)

    @api.get("/metrics", response_class=PlainTextResponse, responses=responses("text/plain"))
    async def metrics() -> Response:
        """Prometheus exposition: relay figures (in total and per worker) and HTTP timings."""
        return Response(relay.metrics.exposition(await relay.stats()), media_type=CONTENT_TYPE_LATEST)

    @api.get("/ws/test", response_class=HTMLResponse, responses=responses("text/html"))
    async def ws_test() -> HTMLResponse:
        """A self-contained page: pick symbols, connect, watch updates arrive with their latency."""
        return HTMLResponse(page_html())

    return api

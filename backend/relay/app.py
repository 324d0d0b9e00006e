"""The relay's FastAPI app: its parts (:class:`~backend.relay.state.Relay`), routers, ``WS /ws``, errors, middleware.

A new group of routes is one router module under :mod:`backend.relay.routes`
plus one ``include_router`` line here.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.routing import WebSocketRoute

from backend.config import Settings
from backend.relay.admission import WebSocketAdmission
from backend.relay.auth import TokenAuth
from backend.relay.docs import install_docs
from backend.relay.endpoint import WebSocketEndpoint
from backend.relay.errors import install_error_handlers, reject_unknown_query
from backend.relay.middleware import RequestContext
from backend.relay.openapi import DESCRIPTION, openapi_schema
from backend.relay.routes import alerts, candles, status
from backend.relay.state import Relay

API_VERSION = "1"


def create_app(settings: Settings) -> FastAPI:
    """Build the relay app; its lifespan starts the Redis subscriber task and the SQL engine."""
    relay = Relay(settings)
    app = FastAPI(
        title="Candlestream relay",
        version=API_VERSION,
        description=DESCRIPTION,
        lifespan=relay.lifespan,
        docs_url=None,  # served by backend.relay.docs, offline
        redoc_url=None,
    )
    app.state.relay = relay
    strict = [Depends(reject_unknown_query)]
    app.include_router(candles.router(relay), dependencies=strict)
    app.include_router(status.router(relay), dependencies=strict)
    app.include_router(alerts.router(relay), dependencies=strict)
    app.router.routes.append(WebSocketRoute("/ws", WebSocketEndpoint(settings, relay.hub, relay.redis)))
    install_docs(app)
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "X-Request-ID", "Content-Type"],
            expose_headers=["X-Request-ID", "X-Response-Time"],
        )
    app.add_middleware(
        WebSocketAdmission,
        origins=settings.cors_origins,
        max_connections=settings.ws_max_connections,
        max_per_address=settings.ws_max_connections_per_address,
    )
    if settings.api_token:
        app.add_middleware(TokenAuth, token=settings.api_token)
    app.add_middleware(RequestContext, metrics=relay.metrics)  # outermost: ids and timings for every response
    app.openapi = lambda: openapi_schema(app, token_required=bool(settings.api_token))  # type: ignore[method-assign]
    return app

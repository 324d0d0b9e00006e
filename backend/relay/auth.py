"""The API token: with ``CANDLES_API_TOKEN`` set, every route but ``/health`` requires it.

Clients present it as ``Authorization: Bearer …``, or (where a browser cannot
set a header: ``/ws``, ``/ws/test``) as the ``token`` query parameter. A
refused HTTP request gets 401 ``ErrorBody``; a refused WebSocket handshake gets
HTTP 401 too where the server allows it, else close code 1008.
"""

from __future__ import annotations

import hmac
import logging
from urllib.parse import parse_qs

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from backend.relay.bodies import ErrorBody, encoded_response
from backend.relay.docs import ASSET_PATHS
from backend.relay.errors import refuse_websocket
from backend.relay.middleware import header, request_id

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/health"}) | ASSET_PATHS  # the docs' static files are the same for everyone
QUERY_TOKEN_PATHS = frozenset({"/ws", "/ws/test"})  # a browser cannot set a header on these


def presented_token(scope: Scope) -> str | None:
    """The token from ``Authorization: Bearer``, or the ``token`` query parameter where allowed."""
    auth = header(scope, b"authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if scope["path"] in QUERY_TOKEN_PATHS:
        values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        if values:
            return values[0]
    return None


class TokenAuth:
    """An ASGI middleware that lets through only requests carrying ``token`` (inside :class:`RequestContext`)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    def authorized(self, scope: Scope) -> bool:
        if scope["path"] in PUBLIC_PATHS:
            return True
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            return True  # CORS preflights carry no credentials
        given = presented_token(scope)
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.authorized(scope):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await deny_websocket(scope, receive, send, request_id(scope))
        else:
            await unauthorized(request_id(scope))(scope, receive, send)


def unauthorized(rid: str) -> Response:
    body = ErrorBody("unauthorized", "a valid API token is required (Authorization: Bearer …)", request_id=rid)
    return encoded_response(body, 401, {"WWW-Authenticate": "Bearer"})


async def deny_websocket(scope: Scope, receive: Receive, send: Send, rid: str) -> None:
    """Refuse a WebSocket handshake with HTTP 401 (or close 1008 where the server cannot)."""
    log.info("WebSocket %s refused: no valid token rid=%s", scope["path"], rid)
    await refuse_websocket(scope, receive, send, unauthorized(rid), rid=rid, close_code=1008, reason="unauthorized")

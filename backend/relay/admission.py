"""Who may open a WebSocket: a browser page from an allowed origin, within the connection limits.

An ASGI middleware for ``websocket`` scopes only (HTTP passes through). A
handshake whose ``Origin`` is neither the relay's own nor one of
``CANDLES_CORS_ORIGINS`` is refused with 403, so another site's page cannot
read the stream with the visitor's credentials; clients that send no
``Origin`` (scripts, the dashboard's listener) are not browsers and pass. A
handshake over the total or the per-address connection limit is refused with
429. Both answer as HTTP where the server supports it, else close with 1008 or
1013 (try again later).
"""

from __future__ import annotations

import logging
from collections import Counter
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from backend.relay.bodies import ErrorBody, encoded_response
from backend.relay.errors import refuse_websocket
from backend.relay.middleware import header, request_id

log = logging.getLogger(__name__)


def origin_allowed(origin: str | None, host: str | None, allowed: frozenset[str]) -> bool:
    """True for no ``Origin``, the relay's own origin (same host and port as ``Host``), or an allowed one."""
    if origin is None or "*" in allowed or origin.rstrip("/") in allowed:
        return True
    return host is not None and urlsplit(origin).netloc.lower() == host.lower()


class WebSocketAdmission:
    """Refuse WebSocket handshakes from foreign origins and over the connection limits."""

    def __init__(self, app: ASGIApp, *, origins: tuple[str, ...], max_connections: int, max_per_address: int) -> None:
        self.app = app
        self.origins = frozenset(o.rstrip("/") for o in origins)
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self.open = 0
        self.per_address: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        origin = header(scope, b"origin")
        if not origin_allowed(origin, header(scope, b"host"), self.origins):
            await refuse(scope, receive, send, 403, "forbidden_origin", f"origin {origin[:100]!r} is not allowed")
            return
        client = scope.get("client")
        address = client[0] if client else "-"
        if self.open >= self.max_connections:
            message = f"the relay holds its limit of {self.max_connections} connections; try again later"
            await refuse(scope, receive, send, 429, "too_many_connections", message)
            return
        if self.per_address[address] >= self.max_per_address:
            message = f"{address} holds its limit of {self.max_per_address} connections; close one first"
            await refuse(scope, receive, send, 429, "too_many_connections", message)
            return
        self.open += 1
        self.per_address[address] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open -= 1
            self.per_address[address] -= 1
            if not self.per_address[address]:
                del self.per_address[address]


async def refuse(scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str) -> None:
    rid = request_id(scope)
    log.info("WebSocket %s refused (%s): %s rid=%s", scope["path"], code, message, rid)
    response = encoded_response(ErrorBody(code, message, request_id=rid), status)
    close_code = 1008 if status == 403 else 1013
    await refuse_websocket(scope, receive, send, response, rid=rid, close_code=close_code, reason=code)

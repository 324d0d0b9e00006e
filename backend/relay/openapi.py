"""The relay's OpenAPI document: FastAPI's schema plus the msgspec bodies, the common headers and auth."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from backend.relay.alert_bodies import ALERT_BODIES
from backend.relay.bodies import BODIES

DESCRIPTION = """
Live candles over **WebSocket `/ws`** (not listed below: OpenAPI has no WebSocket operations).

Send `{"op": "subscribe", "symbols": ["BTCUSDT"], "intervals": ["1m"]}` (and `unsubscribe`, `ping`).
The server answers `{"type": "subscribed", "streams": [...]}`, then one array frame with the latest
candle of each stream, then array frames of updates. Control messages are single objects:
`subscribed`, `unsubscribed`, `resync` (a fresh snapshot follows), `error`, `pong`, `notice` (`unknown_symbol`: \
no candles of it yet, still subscribed). A client that
stays behind is closed with code 4008 "slow consumer". With a token configured, pass it as
`?token=` or `Authorization: Bearer`.
"""

_REASONS = {
    400: "The body is not JSON",
    401: "Missing or wrong API token",
    404: "Unknown symbol",
    422: "Invalid parameter",
    503: "Redis or the database is unreachable",
}


def responses(ok: type | str | None, *errors: int, status: int = 200) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses: ``ok`` (a body struct, a media type, or None: no body) with ``status``, and
    ``ErrorBody`` for each error."""
    if ok is None:
        success: dict[str, Any] = {}
    elif isinstance(ok, str):
        success = {"content": {ok: {"schema": {"type": "string"}}}}
    else:
        success = {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ok.__name__}"}}}}
    out: dict[int | str, dict[str, Any]] = {status: {"description": "Success", **success}}
    error_schema = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    for status in (401, *errors):
        out[status] = {"description": _REASONS[status], **error_schema}
    return out


def openapi_schema(app: FastAPI, *, token_required: bool) -> dict[str, Any]:
    """FastAPI's schema plus the msgspec body schemas and the headers every response carries (built once)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    _, components = msgspec.json.schema_components(BODIES + ALERT_BODIES, ref_template="#/components/schemas/{name}")
    schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
    schema["components"]["headers"] = {
        "X-Request-ID": {"description": "the request's id (echoed or generated)", "schema": {"type": "string"}},
        "X-Response-Time": {"description": "time to the response, like 1.25ms", "schema": {"type": "string"}},
    }
    headers = {name: {"$ref": f"#/components/headers/{name}"} for name in schema["components"]["headers"]}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                response.setdefault("headers", {}).update(headers)
    if token_required:
        schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        schema["security"] = [{"bearer": []}]
    app.openapi_schema = schema
    return schema

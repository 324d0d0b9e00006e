"""Errors as JSON: :class:`ApiError` for expected failures, and handlers that answer every failure as ``ErrorBody``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from backend.relay.bodies import ErrorBody, encoded_response

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An expected failure, answered as ``ErrorBody`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail


class DatabaseUnavailable(ApiError):
    def __init__(self, reason: str) -> None:
        super().__init__(503, "database_unavailable", f"the database is unreachable: {reason}")


async def reject_unknown_query(request: Request) -> None:
    """A query parameter the route does not take is a 422 naming it (``?page=2`` is not silently page 1)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = {p.alias for p in dependant.query_params} | {"token"}
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known - {"token"})) or "no query parameters"
        raise ApiError(422, "invalid_request", f"{unknown[0]}: unknown query parameter; this route takes {takes}")


def _error(
    request: Request, status: int, code: str, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> Response:
    rid = request.scope.get("state", {}).get("request_id")
    return encoded_response(ErrorBody(code, message, detail, rid), status, headers)


async def refuse_websocket(
    scope: Scope, receive: Receive, send: Send, response: Response, *, rid: str, close_code: int, reason: str
) -> None:
    """Refuse a WebSocket handshake with ``response`` (HTTP), or close with ``close_code`` where the server cannot."""
    if (await receive())["type"] != "websocket.connect":
        return
    if "websocket.http.response" in (scope.get("extensions") or {}):
        headers = [*response.raw_headers, (b"x-request-id", rid.encode())]
        await send({"type": "websocket.http.response.start", "status": response.status_code, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": response.body})
    else:
        await send({"type": "websocket.close", "code": close_code, "reason": reason})


def install_error_handlers(app: FastAPI) -> None:
    """Every failure answers JSON: 404/405 from routing, 422 from validation, 503 for Redis/SQL."""

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return _error(request, exc.status, exc.code, exc.message, exc.detail)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {400: "bad_json", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(request, exc.status_code, code, str(exc.detail), headers=exc.headers)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = jsonable_encoder(exc.errors())
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body"))
        reason = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
        if not where and ":" in reason.split(" ", 1)[0]:  # a whole-body check names its field itself
            where, reason = reason.split(": ", 1)
        message = f"{where}: {reason}" if where else reason
        return _error(request, 422, "invalid_request", message, errors)

    async def redis_error(request: Request, exc: Exception) -> Response:
        log.warning("Redis error on %s: %s", request.url.path, exc)
        return _error(request, 503, "redis_unavailable", f"Redis is unreachable: {exc}")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(RedisError, redis_error)

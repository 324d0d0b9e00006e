"""REST client for the relay: timeouts, and errors a person can read.

Candles come back through the one wire decoder; alert rules and fired alerts as the backend's
``AlertRule`` and ``AlertRecord`` structs. A 422 keeps the relay's ``"<field>: <reason>"`` message,
so a form can show it next to the field it names.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import msgspec

from backend.models import AlertRecord, AlertRule, Candle, decode_batch

DEFAULT_TIMEOUT = httpx.Timeout(5.0, connect=2.0)


class RelayError(Exception):
    """The relay could not answer; ``str(err)`` is a sentence for the page."""

    def __init__(self, message: str, *, status: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail  # the relay's own message, e.g. "threshold: channel_exit needs [low, high]"

    @property
    def field(self) -> str | None:
        """The request field a 422 names (``"threshold"`` in ``"threshold: …"``), else None."""
        name, sep, _ = self.detail.partition(": ")
        return name if self.status == 422 and sep and name.isidentifier() else None


class RelayDown(RelayError):
    """Nothing answers at the relay's address (refused, timed out, DNS)."""


def ws_url(relay_url: str) -> str:
    """``http://host:port`` → ``ws://host:port/ws`` (``wss`` for https).

    The token goes in a header (:func:`auth_headers`), never the URL: servers and proxies log URLs.
    """
    parts = urlsplit(relay_url.rstrip("/"))
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path + "/ws", "", ""))


def auth_headers(token: str | None) -> dict[str, str]:
    """The ``Authorization`` header that carries ``token`` (none without one)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


_body_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])


def _candles(raw: msgspec.Raw | None) -> list[Candle]:
    """A REST body's array of wire candles → Candles, through the one wire decoder (no re-encoding)."""
    if raw is None or bytes(raw).strip() in {b"", b"null", b"[]"}:
        return []
    return [m for m in decode_batch(bytes(raw)) if isinstance(m, Candle)]


def _text(raw: msgspec.Raw | None) -> Any:
    return None if raw is None else msgspec.json.decode(bytes(raw))


class RelayClient:
    """Synchronous client for the relay's REST API (thread-safe: one httpx client)."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        headers = auth_headers(token)
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        data = self._get_bytes(path, params)
        try:
            return msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            raise RelayError(f"the relay at {self.base_url} sent a body that is not JSON for {path}") from exc

    def _get_fields(self, path: str, params: dict[str, Any] | None = None) -> dict[str, msgspec.Raw]:
        """A JSON object body with its fields left encoded (candle arrays go to ``decode_batch``)."""
        data = self._get_bytes(path, params)
        try:
            return _body_decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise RelayError(f"the relay at {self.base_url} sent an unexpected body for {path}") from exc

    def _get_bytes(self, path: str, params: dict[str, Any] | None = None) -> bytes:
        return self._request("GET", path, params=params)

    def _request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, body: dict[str, Any] | None = None
    ) -> bytes:
        """One request; the body of a 2xx answer, else a :class:`RelayError` a person can read."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        content = msgspec.json.encode(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            resp = self._http.request(method, path, params=query, content=content, headers=headers)
        except httpx.TimeoutException as exc:
            raise RelayDown(f"the relay at {self.base_url} did not answer in time ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise RelayDown(f"no relay answers at {self.base_url} ({_reason(exc)})") from exc
        if resp.status_code >= 400:
            raise _http_error(resp)
        return resp.content

    def _decode(self, data: bytes, path: str, type_: Any = Any) -> Any:
        try:
            return msgspec.json.decode(data, type=type_)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise RelayError(f"the relay at {self.base_url} sent an unexpected body for {path}") from exc

    # --- endpoints

    def health(self) -> dict[str, Any]:
        """``/health`` body; a 503 (degraded) is returned as a body too, not raised."""
        try:
            resp = self._http.get("/health", timeout=httpx.Timeout(2.0, connect=1.0))
        except httpx.TransportError as exc:
            raise RelayDown(f"no relay answers at {self.base_url} ({_reason(exc)})") from exc
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        body.setdefault("status", "ok" if resp.status_code == 200 else "degraded")
        return body

    def symbols(self) -> tuple[list[str], list[str]]:
        body = self._get("/api/v1/symbols")
        return list(body.get("symbols", [])), list(body.get("intervals", []))

    def candles(self, symbol: str, interval: str, limit: int = 500) -> list[Candle]:
        """Recent closed candles and the forming one, oldest first."""
        body = self._get_fields(f"/api/v1/candles/{symbol}", {"interval": interval, "limit": limit})
        return _candles(body.get("candles"))

    def latest(self, symbols: list[str], interval: str) -> list[Candle]:
        body = self._get_fields("/api/v1/candles", {"symbols": ",".join(symbols), "interval": interval})
        return _candles(body.get("candles"))

    def history(
        self,
        symbol: str,
        interval: str,
        *,
        start: int | None = None,
        end: int | None = None,
        limit: int = 500,
        cursor: str | None = None,
    ) -> tuple[list[Candle], str | None]:
        """One page of closed candles from SQL (oldest first) and the cursor of the next page."""
        params = {"interval": interval, "start": start, "end": end, "limit": limit, "cursor": cursor}
        body = self._get_fields(f"/api/v1/history/{symbol}", params)
        return _candles(body.get("items")), _text(body.get("next_cursor"))

    def history_before(self, symbol: str, interval: str, end: int, limit: int = 500) -> list[Candle]:
        """Up to ``limit`` closed candles that open before ``end`` (ms), oldest first."""
        from backend.config import INTERVALS_MS

        start = end - limit * INTERVALS_MS[interval]
        out: list[Candle] = []
        cursor: str | None = None
        while True:
            items, cursor = self.history(symbol, interval, start=start, end=end, limit=limit, cursor=cursor)
            out.extend(items)
            if not cursor or len(out) >= limit or not items:
                return out[-limit:]

    def stats(self) -> dict[str, Any]:
        return self._get("/api/v1/stats")

    def ws_stats(self) -> dict[str, Any]:
        return self._get("/ws/stats")

    # --- alerts

    def alert_rules(self, symbol: str | None = None) -> list[AlertRule]:
        """Every alert rule (oldest first), or those of one symbol; targets come back masked."""
        path = f"{ALERTS}/rules"
        body = self._decode(self._request("GET", path, params={"symbol": symbol}), path, RulesPage)
        return body.items

    def create_rule(self, rule: dict[str, Any]) -> AlertRule:
        """Save a rule body (see DESIGN "Alert rules"); a 422 names the field in ``err.field``."""
        path = f"{ALERTS}/rules"
        return self._decode(self._request("POST", path, body=rule), path, AlertRule)

    def update_rule(self, rule_id: int, changes: dict[str, Any]) -> AlertRule:
        """Change some fields of a rule, e.g. ``{"enabled": False}``."""
        path = f"{ALERTS}/rules/{rule_id}"
        return self._decode(self._request("PATCH", path, body=changes), path, AlertRule)

    def delete_rule(self, rule_id: int) -> None:
        self._request("DELETE", f"{ALERTS}/rules/{rule_id}")

    def alert_events(
        self,
        *,
        rule_id: int | None = None,
        symbol: str | None = None,
        interval: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> EventsPage:
        """One page of fired alerts, newest first, with their deliveries."""
        path = f"{ALERTS}/events"
        params = {"rule_id": rule_id, "symbol": symbol, "interval": interval, "limit": limit, "cursor": cursor}
        return self._decode(self._request("GET", path, params=params), path, EventsPage)

    def preview_rule(self, rule: dict[str, Any]) -> Preview:
        """Where a rule body would have fired over the symbol's cached closed candles (nothing is saved)."""
        path = f"{ALERTS}/preview"
        return self._decode(self._request("POST", path, body=rule), path, Preview)


ALERTS = "/api/v1/alerts"


class RulesPage(msgspec.Struct):
    items: list[AlertRule]


class EventsPage(msgspec.Struct):
    """Fired alerts, newest first; ``next_cursor`` asks for the older ones."""

    items: list[AlertRecord]
    next_cursor: str | None = None
    has_more: bool = False


class PreviewFire(msgspec.Struct):
    open_time: int
    value: float
    message: str


class Preview(msgspec.Struct):
    """Where a rule would have fired: over ``candles`` closed candles opening from ``first`` to ``last``."""

    candles: int
    first: int | None
    last: int | None
    fires: list[PreviewFire]


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "refused" in text.lower():
        return "connection refused"
    return text


def _http_error(resp: httpx.Response) -> RelayError:
    """An HTTP error answer as a sentence; the relay's own ``message`` (``"<field>: <reason>"``) is its ``detail``."""
    detail: Any = ""
    own = ""
    try:
        body = resp.json()
        if isinstance(body, dict):
            own = body.get("message") if isinstance(body.get("message"), str) else ""
            detail = body.get("detail") or own or ""
    except ValueError:
        detail = resp.text[:200]
    if isinstance(detail, list):  # FastAPI validation errors
        detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    what = {401: "refused the token", 403: "refused the token", 404: "does not know that", 422: "rejected the request"}
    suffix = f": {detail}" if detail else ""
    message = f"the relay {what.get(resp.status_code, 'failed')} (HTTP {resp.status_code}){suffix}"
    return RelayError(message, status=resp.status_code, detail=own or str(detail))

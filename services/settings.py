"""The app's settings: the relay's address and token from the backend's settings, plus UI knobs.

``CANDLES_RELAY_URL`` (default ``http://127.0.0.1:8000``), ``CANDLES_API_TOKEN``,
``CANDLES_UI_REFRESH_S`` (live refresh period, default 1 s),
``CANDLES_AUTOSTART`` (``0`` never starts a local backend).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from backend.config import Settings

DEFAULT_RELAY_URL = Settings().relay_url


@dataclass(frozen=True)
class UiSettings:
    relay_url: str = DEFAULT_RELAY_URL
    token: str | None = None
    refresh_s: float = 1.0
    autostart: bool = True
    error: str | None = None  # a setting that could not be read (shown on the pages)


def ui_settings(environ: dict[str, str] | None = None) -> UiSettings:
    env = os.environ if environ is None else environ
    error = None
    try:
        backend = Settings.from_env(dict(env))
        relay_url, token = backend.relay_url, backend.api_token
    except ValueError as exc:
        error = f"a CANDLES_ setting is invalid: {exc}"
        relay_url, token = env.get("CANDLES_RELAY_URL") or DEFAULT_RELAY_URL, env.get("CANDLES_API_TOKEN") or None
    refresh = 1.0
    raw = env.get("CANDLES_UI_REFRESH_S", "").strip()
    if raw:
        try:
            refresh = float(raw)
            if not 0.1 <= refresh <= 60:
                raise ValueError
        except ValueError:
            error = error or f"CANDLES_UI_REFRESH_S must be a number of seconds from 0.1 to 60, not {raw!r}"
            refresh = 1.0
    autostart = env.get("CANDLES_AUTOSTART", "1").strip().lower() not in {"0", "false", "no", "off"}
    return UiSettings(relay_url.rstrip("/"), token, refresh, autostart, error)

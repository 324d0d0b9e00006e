"""The app's settings: the relay's address and token from the backend's settings, plus UI knobs.

``CANDLES_RELAY_URL`` (default ``http://127.0.0.1:8000``) and ``CANDLES_API_TOKEN``
are declared in :mod:`backend.config`; the UI's own knobs are declared below, the
same way. A setting that does not validate keeps its default and is reported in
:attr:`UiSettings.error` (shown on the pages), never raised.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import Field

from backend.config import Settings
from backend.envsettings import ENV_PREFIX, EnvSettings

DEFAULT_RELAY_URL: str = Settings.model_fields["relay_url"].default


class UiEnv(EnvSettings):
    """The UI's knobs (``CANDLES_UI_REFRESH_S``, ``CANDLES_AUTOSTART``, ``CANDLES_UI_DELTA``)."""

    ui_refresh_s: float = Field(1.0, ge=0.1, le=60, description="live refresh period of the pages, s")
    autostart: bool = Field(True, description="start a local backend when no relay answers (0: never)")
    ui_delta: bool = Field(True, description="live charts send only what changed (0: the whole figure every refresh)")


@dataclass(frozen=True)
class UiSettings:
    relay_url: str = DEFAULT_RELAY_URL
    token: str | None = None
    refresh_s: float = 1.0
    autostart: bool = True
    error: str | None = None  # a setting that could not be read (shown on the pages)
    delta: bool = True  # live charts send only what changed since the browser's version


def ui_settings(environ: Mapping[str, str] | None = None) -> UiSettings:
    """The app's settings from ``environ`` (default: the process's environment and ``./.env``).

    Every page run asks, so the process's are read again only when a ``CANDLES_*``
    variable or the ``.env`` file changed.
    """
    if environ is not None:
        return _read(environ)
    try:
        env_file = os.stat(".env").st_mtime_ns
    except OSError:
        env_file = None
    variables = tuple(sorted((k, v) for k, v in os.environ.items() if k.upper().startswith(ENV_PREFIX)))
    return _read_process_env(variables, env_file)


@functools.lru_cache(maxsize=8)
def _read_process_env(variables: tuple[tuple[str, str], ...], env_file: int | None) -> UiSettings:
    """The process's settings; the arguments are only the cache key (what they were read from)."""
    return _read(None)


def _read(environ: Mapping[str, str] | None) -> UiSettings:
    backend, backend_error = Settings.from_env_lenient(environ)
    ui, ui_error = UiEnv.from_env_lenient(environ)
    error = f"a CANDLES_ setting is invalid: {backend_error}" if backend_error else ui_error
    return UiSettings(
        backend.relay_url.rstrip("/"), backend.api_token, ui.ui_refresh_s, ui.autostart, error, ui.ui_delta
    )

"""The app's settings: the relay's address and token from the backend's settings, plus UI knobs.

``CANDLES_RELAY_URL`` (default ``http://127.0.0.1:8000``) and ``CANDLES_API_TOKEN``
are declared in :mod:`backend.config`; the UI's own knobs are declared below, the
same way. A setting that does not validate keeps its default and is reported in
:attr:`UiSettings.error` (shown on the pages), never raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import Field

from backend.config import Settings
from backend.envsettings import EnvSettings

DEFAULT_RELAY_URL: str = Settings.model_fields["relay_url"].default


class UiEnv(EnvSettings):
    """The UI's knobs (``CANDLES_UI_REFRESH_S``, ``CANDLES_AUTOSTART``)."""

    ui_refresh_s: float = Field(1.0, ge=0.1, le=60, description="live refresh period of the pages, s")
    autostart: bool = Field(True, description="start a local backend when no relay answers (0: never)")


@dataclass(frozen=True)
class UiSettings:
    relay_url: str = DEFAULT_RELAY_URL
    token: str | None = None
    refresh_s: float = 1.0
    autostart: bool = True
    error: str | None = None  # a setting that could not be read (shown on the pages)


def ui_settings(environ: Mapping[str, str] | None = None) -> UiSettings:
    """The app's settings from ``environ`` (default: the process's environment and ``./.env``)."""
    backend, backend_error = Settings.from_env_lenient(environ)
    ui, ui_error = UiEnv.from_env_lenient(environ)
    error = f"a CANDLES_ setting is invalid: {backend_error}" if backend_error else ui_error
    return UiSettings(backend.relay_url.rstrip("/"), backend.api_token, ui.ui_refresh_s, ui.autostart, error)

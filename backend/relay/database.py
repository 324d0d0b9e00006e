"""The relay's SQL access: the engine opened off the event loop, queries run on worker threads.

An unreachable database degrades history only (503 ``database_unavailable``);
the relay runs on and retries. Every call has a deadline (:mod:`backend.dbtimeouts`), and after
a failure calls answer 503 at once for ``RETRY_S`` instead of each waiting out the deadline again:
a hung database costs one request a few seconds, not every request. The queries themselves live in
:mod:`backend.store`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from backend.dbtimeouts import DEFAULT_TIMEOUTS, DbTimeouts
from backend.relay.errors import ApiError, DatabaseUnavailable
from backend.store import check_connection, make_engine

log = logging.getLogger(__name__)


class Database:
    """The SQL engine for history, opened lazily: an unreachable database degrades history only."""

    RETRY_S = 2.0

    def __init__(self, url: str, timeouts: DbTimeouts = DEFAULT_TIMEOUTS) -> None:
        self.url = url
        self.timeouts = timeouts
        self.engine: Engine | None = None
        self.last_error: str | None = None
        self._retry_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> Engine:
        self._fail_fast()
        if self.engine is not None:
            return self.engine
        async with self._lock:
            if self.engine is None:
                self._fail_fast()
                try:
                    self.engine = await asyncio.to_thread(make_engine, self.url, timeouts=self.timeouts)
                except Exception as exc:  # any driver or URL problem: history degrades, the relay runs on
                    raise self._failed(exc) from None
                self.last_error = None
        return self.engine

    def _fail_fast(self) -> None:
        if time.monotonic() < self._retry_at:
            raise DatabaseUnavailable(self.last_error or "not connected")

    def _failed(self, exc: BaseException) -> DatabaseUnavailable:
        """Remember a failure: calls answer 503 without trying for ``RETRY_S``."""
        self._retry_at = time.monotonic() + self.RETRY_S
        first_line = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        if first_line != self.last_error:
            log.warning("database unavailable: %s", first_line)
        self.last_error = first_line
        return DatabaseUnavailable(first_line)

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(engine, *args, **kwargs)`` on a worker thread; a database error becomes a 503."""
        engine = await self.get()
        try:
            result = await asyncio.to_thread(fn, engine, *args, **kwargs)
        except (SQLAlchemyError, OSError) as exc:
            raise self._failed(exc) from None
        if self.last_error is not None:
            log.info("database is back")
            self.last_error = None
        return result

    async def ping(self, timeout: float = 2.0) -> bool:
        """Whether the database answers a ``SELECT 1`` within ``timeout`` s (no answer counts as a failure)."""
        try:
            await asyncio.wait_for(self.run(check_connection), timeout)
        except ApiError:
            return False
        except TimeoutError:
            self._failed(TimeoutError(f"no answer within {timeout:g} s"))
            return False
        return True

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()

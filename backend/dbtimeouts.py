"""Every database call has a deadline: a hung or refused database is an error within seconds, never a hang.

PostgreSQL (psycopg 3): ``connect_timeout`` bounds connecting; the server's ``statement_timeout`` ends a
slow statement; and a client-side deadline on every wait for the server ends a connection whose peer
is open but silent (a hung server, or a network device that holds the connection and forwards
nothing): TCP keepalives and ``tcp_user_timeout`` cannot see that case, because the far side's
kernel still acknowledges the bytes. psycopg has no client-side statement timeout, so
:class:`DeadlineConnection` passes one to psycopg's own ``Connection.wait`` (which takes a
``timeout`` since 3.3). SQLite: the busy timeout bounds a wait for another writer's lock. Both: the
pool's ``pool_timeout`` bounds the wait for a free connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors

# the client waits this much longer than the server's statement_timeout, so a slow statement on a live
# server ends with the server's clean "canceling statement" (the connection stays usable) rather than ours
CLIENT_MARGIN_S = 2.0


@dataclass(frozen=True)
class DbTimeouts:
    """Seconds: connecting; one statement (PostgreSQL ``statement_timeout``, SQLite busy wait); a pooled connection."""

    connect_s: float = 5.0
    statement_s: float = 10.0
    pool_s: float = 5.0

    @property
    def client_s(self) -> float:
        """How long the client waits for any answer of the server before it drops the connection."""
        return self.statement_s + CLIENT_MARGIN_S


class DeadlineConnection(psycopg.Connection):  # type: ignore[type-arg]
    """A psycopg connection whose every wait for the server ends after ``io_timeout`` seconds.

    On the deadline the connection is closed (its state is unknown: the server may still be
    running the statement) and the caller gets an ``OperationalError``; SQLAlchemy then sees a
    closed connection and throws it away instead of returning it to the pool.
    """

    io_timeout: float | None = None

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        try:
            return super().wait(gen, interval, timeout if timeout is not None else self.io_timeout)
        except errors.OperationalError as exc:
            if type(exc).__name__ != "_WaitTimeout":  # psycopg's own timeout exception is private
                raise
            self.pgconn.finish()
            raise errors.OperationalError(f"no answer from the database within {self.io_timeout:g} s") from None


def engine_options(timeouts: DbTimeouts, *, pooled: bool = True) -> dict[str, Any]:
    """``create_engine`` keyword arguments: the pool's wait (``pooled`` is false for an in-memory SQLite).

    PostgreSQL's connection timeouts are set by :func:`connect_with_deadline`, SQLite's busy timeout
    by :func:`sqlite_pragmas`.
    """
    return {"pool_timeout": timeouts.pool_s} if pooled else {}


def sqlite_pragmas(timeouts: DbTimeouts) -> tuple[str, ...]:
    """What every SQLite connection runs first: WAL (readers never wait for the writer) and the busy timeout."""
    busy_ms = int(timeouts.statement_s * 1000)
    return ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", f"PRAGMA busy_timeout={busy_ms}")


def connect_with_deadline(timeouts: DbTimeouts, cargs: Any, cparams: dict[str, Any]) -> DeadlineConnection:
    """Open a psycopg connection (as SQLAlchemy would) with ``timeouts``; what the URL sets explicitly wins.

    The URL's own ``options`` (a ``search_path``, say) are kept: the statement timeout goes before them.
    """
    cparams = dict(cparams)
    cparams.setdefault("connect_timeout", max(1, round(timeouts.connect_s)))  # libpq takes whole seconds
    statement = f"-c statement_timeout={int(timeouts.statement_s * 1000)}"
    cparams["options"] = f"{statement} {cparams.get('options') or ''}".strip()
    conn = DeadlineConnection.connect(*cargs, **cparams)
    conn.io_timeout = timeouts.client_s
    return conn


DEFAULT_TIMEOUTS = DbTimeouts()

"""``python -m backend api``: run the relay app with uvicorn until SIGINT/SIGTERM, in one process or several."""

from __future__ import annotations

import contextlib
import logging
import resource
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING

from backend.config import Settings
from backend.relay.workers import cores, spreads_connections, supervise, worker_count

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)


def serve(settings: Settings) -> int:
    """Run the relay on ``api_host:api_port`` until SIGINT/SIGTERM: ``settings.workers`` processes sharing the
    port where the platform spreads connections over them (:mod:`backend.relay.workers`), else this one."""
    _raise_fd_limit()
    n = worker_count(settings.workers, cores(), spreads_connections())
    if n > 1:
        return supervise(settings, n)
    if settings.workers > 1:
        log.warning("%d relay workers asked, but %s cannot share a port among processes: serving with one",
                    settings.workers, sys.platform)  # fmt: skip
    log.info("relay listening on http://%s:%d", settings.api_host, settings.api_port)
    serve_here(settings)
    return 0


def serve_here(settings: Settings, sock: socket.socket | None = None) -> None:
    """Serve the relay in this process, on ``sock`` when given (a worker's), until SIGINT/SIGTERM.

    A stop signal that comes while the app is still loading (before uvicorn listens for signals) is kept and
    handed to the server, which then stops as soon as it has started: a supervisor stopping a worker that is
    just starting would otherwise wait its whole timeout and kill it.
    """
    import uvicorn

    with _stop_signals() as stop:
        server = uvicorn.Server(uvicorn_config(settings))
        stop.attach(server)
        server.run([sock] if sock is not None else None)


def uvicorn_config(settings: Settings) -> uvicorn.Config:
    """How the relay is served: its app, the WebSocket protocol and limits, no access log (the app logs requests).

    The app and uvicorn are imported here, not with the module: the process that supervises workers never
    serves, and stays small (35 MB instead of 95).
    """
    import uvicorn

    from backend.relay.app import create_app
    from backend.relay.transport import websocket_protocol

    return uvicorn.Config(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        ws=websocket_protocol(),
        ws_max_size=1 << 20,  # larger client messages close the connection (1009)
        ws_per_message_deflate=False,  # compression per client would cost CPU and ~300 KB per connection
        ws_ping_interval=settings.ws_ping_interval_s or None,
        ws_ping_timeout=settings.ws_ping_timeout_s or None,
        access_log=False,  # RequestContext logs each request with its id
        log_config=None,
        backlog=4096,
        timeout_graceful_shutdown=5,
        lifespan="on",
    )


def _raise_fd_limit() -> None:
    """Every WebSocket is a file descriptor: allow as many as the hard limit does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))


class _Stop:
    """Stop signals for a uvicorn server that may not exist yet: kept until it does, then handed to it."""

    def __init__(self) -> None:
        self.server: uvicorn.Server | None = None
        self.pending: list[int] = []

    def attach(self, server: uvicorn.Server) -> None:
        self.server = server  # from here on, a signal goes straight to it
        for signum in self.pending:
            server.handle_exit(signum, None)

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.server is None:
            self.pending.append(signum)
        else:
            self.server.handle_exit(signum, frame)


@contextlib.contextmanager
def _stop_signals() -> Iterator[_Stop]:
    """SIGINT/SIGTERM for the server being built and run here, and ``serve`` returning after them.

    uvicorn shuts down gracefully on those signals and then raises the signal again under the previous handler:
    with the default SIGTERM action that would kill the process before ``python -m backend run`` stops its
    ingest child and its embedded Valkey. Under this handler the echo only asks an exiting server to exit.
    """
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

"""Real servers for tests: a relay (``python -m backend api``) or the whole stack (``python -m backend run``).

Each runs as a subprocess on a free loopback port, configured only through
``CANDLES_*`` environment variables, exactly as a user would run it; its output
goes to a log file whose tail is shown when it fails to start. Also here: a
websocket-client wrapper that speaks the relay's protocol, and a publisher
that writes candles the way the ingest does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
import redis
import websocket

from backend import processes
from backend.cache import CacheKeys, queue_candle_writes
from backend.config import INTERVALS_MS, Settings
from backend.models import Candle, encode_message, now_ms
from backend.sinks.redis import RedisSink

ROOT = Path(__file__).resolve().parent.parent


def isolated_settings(redis_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings of their own on a shared Redis (key prefix, channels) and a SQLite file in ``data_dir``."""
    tag = uuid.uuid4().hex[:8]
    base = Settings(
        redis_url=redis_url,
        database_url=f"sqlite:///{data_dir / 'candles.sqlite3'}",
        redis_prefix=f"test{tag}",
        updates_channel=f"test{tag}:updates",
        alerts_channel=f"test{tag}:alerts",
        alert_rules_channel=f"test{tag}:alert-rules",
        data_dir=data_dir,
        workers=1,  # one relay process unless a test asks for more (its figures are then immediate)
    )
    return base.model_copy(update=overrides)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings_env(settings: Settings) -> dict[str, str]:
    """``CANDLES_*`` variables that make ``Settings.from_env()`` equal ``settings``."""
    env: dict[str, str] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        env[f"CANDLES_{name.upper()}"] = ",".join(value) if isinstance(value, tuple) else str(value)
    return env


KEPT_SETTINGS = {"CANDLES_EMBEDDED"}  # the test run's choice of embedded server (the fallback pass sets it)


def clean_environ(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without its ``CANDLES_*`` variables (but ``CANDLES_EMBEDDED``), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDLES_") or k in KEPT_SETTINGS}
    env["PYTHONUNBUFFERED"] = "1"
    return env | extra


@dataclass
class Server:
    """A backend process serving the relay's API at ``url``."""

    url: str
    process: subprocess.Popen[bytes] | Any  # a RelayThread when the relay is served in this process
    log_path: Path
    group: bool = False  # started in its own session: stop() ends its children too
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=10)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + "/ws"

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def stats(self, **kwargs: Any) -> dict[str, Any]:
        return self.get("/ws/stats", **kwargs).json()

    def worker_pids(self) -> list[int]:
        """The relay workers reporting (``--workers``), by pid."""
        return sorted(w["pid"] for w in self.stats()["workers"])

    def log_tail(self, n: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""

    def wait_until(self, check: Callable[[], bool], timeout: float = 20, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited ({self.process.returncode}) waiting for {what}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError, ValueError):
                if check():
                    return
            time.sleep(0.05)
        raise TimeoutError(f"no {what} after {timeout}s:\n{self.log_tail()}")

    def wait_healthy(self, timeout: float = 20) -> None:
        """Until ``/health`` answers 200: the Redis subscription is up, so nothing published is missed."""
        self.wait_until(lambda: self.get("/health").status_code == 200, timeout, "healthy /health")

    def stop(self, timeout: float = 15) -> None:
        self.client.close()
        processes.stop(self.process, timeout, own_group=self.group)
        if self.group:  # children left behind by a killed parent
            processes.kill_group(self.process)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _spawn(
    args: list[str], env: dict[str, str], log_dir: Path | None, name: str, group: bool, python: str = sys.executable
) -> tuple[Any, Path]:
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="candles-"))
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [python, "-m", "backend", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            **processes.group_options(group),
        )
    return process, log_path


class RelayThread:
    """The relay served by uvicorn on a thread of this process, with the ``poll``/``returncode`` of a process.

    ``make mutate`` serves the relay this way (``CANDLES_TEST_RELAY_IN_PROCESS=1``): mutmut only sees the code
    its tests run in their own process. Everything else about the relay is as ``python -m backend api`` serves it.
    """

    def __init__(self, settings: Settings, log_path: Path) -> None:
        import uvicorn

        from backend.relay.server import uvicorn_config

        self.log = logging.FileHandler(log_path)  # the relay's log lines, as the process would write them
        self.log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger("backend").addHandler(self.log)
        logging.getLogger("backend").setLevel(logging.INFO)
        self.server = uvicorn.Server(uvicorn_config(settings))
        self.thread = threading.Thread(target=self.server.run, name="relay", daemon=True)
        self.thread.start()
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and not self.thread.is_alive():
            self.returncode = 0 if self.server.started else 1
        return self.returncode

    def stop(self, timeout: float) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.poll()
        logging.getLogger("backend").removeHandler(self.log)
        self.log.close()


@dataclass
class InProcessServer(Server):
    def stop(self, timeout: float = 15) -> None:
        self.client.close()
        self.process.stop(timeout)


def relay_in_process() -> bool:
    return os.environ.get("CANDLES_TEST_RELAY_IN_PROCESS", "") == "1"


def relay_scope(fixture_name: str, config: Any) -> str:
    """The scope of a test module's relay: the module, or each test under mutation testing.

    The routes are closures made with the app, so mutmut credits them to the test that made the app: a relay per
    test lets every test of the routes kill their mutants.
    """
    return "function" if relay_in_process() and os.environ.get("CANDLES_MUTATION") == "1" else "module"


def start_relay(
    settings: Settings,
    *,
    log_dir: Path | None = None,
    healthy: bool = True,
    timeout: float = 20,
    port: int | None = None,
    python: str = sys.executable,
) -> Server:
    """``python -m backend api`` for ``settings`` on ``port`` (default: a free one); waits until it is healthy.

    ``python``: the interpreter of the relay (the Flink tests run in .venv-flink, the relay in .venv)."""
    return on_a_free_port(lambda p: _start_relay_once(settings, log_dir, healthy, timeout, p, python), port)


BIND_ATTEMPTS = 3
T = TypeVar("T")


def on_a_free_port(start: Callable[[int], T], port: int | None = None) -> T:
    """``start(port)``, on a free port unless ``port`` is given; again on another when that one was taken.

    ``free_port`` closes the port it found before the server binds it: a process beside the tests (the browser
    half of ``make test`` runs in parallel) may take it in between. ``start`` then raises a RuntimeError saying
    "already in use" (from the server's log), which means "try another port".
    """
    for _ in range(BIND_ATTEMPTS - 1):
        try:
            return start(port or free_port())
        except RuntimeError as exc:
            if "already in use" not in str(exc) or port is not None:
                raise
    return start(port or free_port())


def _start_relay_once(
    settings: Settings, log_dir: Path | None, healthy: bool, timeout: float, port: int, python: str
) -> Server:
    """The relay on ``port``, healthy (or answering, unless ``healthy``)."""
    settings = settings.model_copy(update={"api_host": "127.0.0.1", "api_port": port})
    if relay_in_process():
        log_path = (log_dir or Path(tempfile.mkdtemp(prefix="candles-"))) / "relay.log"  # logs go to pytest's capture
        relay = RelayThread(settings, log_path)
        server: Server = InProcessServer(f"http://127.0.0.1:{settings.api_port}", relay, log_path)
    else:
        env = clean_environ(settings_env(settings))
        process, log_path = _spawn(["api"], env, log_dir, "relay", group=False, python=python)
        server = Server(f"http://127.0.0.1:{settings.api_port}", process, log_path)
    try:
        if healthy:
            server.wait_healthy(timeout)
        else:
            server.wait_until(lambda: server.get("/health").status_code in (200, 503), timeout, "an answer")
    except BaseException:
        server.stop()
        raise
    return server


def start_stack(
    env: dict[str, str] | None = None,
    *,
    symbols: Iterable[str] = ("BTCUSDT", "ETHUSDT"),
    data_dir: Path | None = None,
    log_dir: Path | None = None,
    timeout: float = 60,
) -> Server:
    """``python -m backend run`` with the simulator on a free port (embedded server and SQLite unless
    ``env`` names a Redis or database); waits until the relay is healthy and candles flow."""
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="candles-stack-"))
    port = free_port()
    base = {
        "CANDLES_SOURCE": "simulator",
        "CANDLES_SYMBOLS": ",".join(symbols),
        "CANDLES_API_HOST": "127.0.0.1",
        "CANDLES_API_PORT": str(port),
        "CANDLES_DATA_DIR": str(data_dir),
        "CANDLES_WORKERS": "1",  # one relay process unless ``env`` asks for more
    }
    process, log_path = _spawn(["run"], clean_environ(base | (env or {})), log_dir or data_dir, "stack", group=True)
    server = Server(f"http://127.0.0.1:{port}", process, log_path, group=True)
    if (env or {}).get("CANDLES_API_TOKEN"):
        server.client.headers["Authorization"] = f"Bearer {(env or {})['CANDLES_API_TOKEN']}"
    try:
        server.wait_healthy(timeout)
        server.wait_until(lambda: bool(server.get("/api/v1/symbols").json()["symbols"]), timeout, "symbols")
    except BaseException:
        server.stop()
        raise
    return server


def descendants(pid: int) -> list[int]:
    """The processes under ``pid``, children first (Linux: /proc)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{parent}/task").iterdir():
                children = [int(c) for c in (task / "children").read_text().split()]
                out += children
                todo += children
    return out


# ---------------------------------------------------------------- WebSocket client


class WsClient:
    """A websocket-client connection that speaks the relay's protocol (one thread, blocking)."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 10, **options: Any) -> None:
        self.url = url + (f"?token={token}" if token else "")
        self.ws = websocket.create_connection(self.url, timeout=timeout, **options)

    def send(self, message: dict[str, Any] | str) -> None:
        self.ws.send(message if isinstance(message, str) else json.dumps(message))

    def recv(self, timeout: float | None = None) -> Any:
        """The next message, parsed: a list (data frame) or a dict (control message)."""
        if timeout is not None:
            self.ws.settimeout(timeout)
        return json.loads(self.ws.recv())

    def recv_control(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        """Skip data frames until a control message of ``kind``."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(max(0.05, deadline - time.monotonic()))
            if isinstance(msg, dict) and msg.get("type") == kind:
                return msg

    def subscribe(
        self, symbols: list[str], intervals: list[str] | None = None, timeout: float = 10
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Subscribe; returns the acknowledgement and the snapshot frame."""
        msg: dict[str, Any] = {"op": "subscribe", "symbols": symbols}
        if intervals is not None:
            msg["intervals"] = intervals
        self.send(msg)
        ack = self.recv_control("subscribed", timeout)
        snapshot = self.recv(timeout)
        assert isinstance(snapshot, list), snapshot
        return ack, snapshot

    def candles(self, n: int, timeout: float = 10) -> list[dict[str, Any]]:
        """The next ``n`` candles from data frames (control messages are skipped)."""
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            msg = self.recv(max(0.05, deadline - time.monotonic()))
            if isinstance(msg, list):
                out.extend(m for m in msg if m.get("type") == "candle")
        return out

    def drain(self, timeout: float = 20) -> tuple[list[Any], int | None, str]:
        """Read what is left up to the server's close frame: (messages, close code, close reason).

        The code is None when the connection ended without a close frame.
        """
        self.ws.settimeout(timeout)
        messages: list[Any] = []
        while True:
            try:
                opcode, data = self.ws.recv_data(control_frame=True)
            except (websocket.WebSocketException, OSError):
                return messages, None, ""
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                return messages, code, data[2:].decode("utf-8", "replace")
            if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                messages.append(json.loads(data))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close(timeout=1)

    def __enter__(self) -> WsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- candles in, the way the ingest writes them


def make_candle(
    symbol: str, interval: str, open_time: int, *, seq: int, close: float = 100.0, closed: bool = False
) -> Candle:
    step = INTERVALS_MS[interval]
    return Candle(
        symbol=symbol,
        interval=interval,
        open_time=open_time,
        close_time=open_time + step - 1,
        open=close,
        high=close + 1,
        low=close - 1,
        close=close,
        volume=1.5,
        quote_volume=close * 1.5,
        trades=3,
        taker_buy_volume=0.5,
        taker_buy_quote_volume=close * 0.5,
        closed=closed,
        seq=seq,
        event_time=open_time + 1,
    )


def cache_candles(settings: Settings, *candles: Candle, recent_cap: int = 1000) -> None:
    """Write candles to Redis's cache exactly as the ingest does, without publishing them."""
    client = redis.Redis.from_url(settings.redis_url or "")
    pipe = client.pipeline(transaction=False)
    keys = CacheKeys(settings.redis_prefix)
    queue_candle_writes(
        pipe, keys, candles, [encode_message(c) for c in candles], recent_cap=recent_cap, latest_ttl_s=600
    )
    pipe.execute()
    client.close()


class Publisher:
    """The ingest's Redis sink (``RedisSink``) for tests: stamps ``emitted_at`` and publishes."""

    def __init__(self, settings: Settings, url: str | None = None) -> None:
        self.client = redis.Redis.from_url(url or settings.redis_url or "")
        self.sink = RedisSink.from_settings(settings, self.client)

    def publish(self, *candles: Candle) -> list[dict[str, Any]]:
        """Publish in one message; returns the candles as a client receives them."""
        stamped = [msgspec.structs.replace(c, emitted_at=now_ms()) for c in candles]
        assert self.sink.put(stamped), "Redis refused the flush"
        return [msgspec.to_builtins(c) for c in stamped]

    def close(self) -> None:
        self.client.close()

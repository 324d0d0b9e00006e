"""Fan-out benchmark: N WebSocket clients on one stream receiving U updates/s through a real relay.

For each scenario and each number of relay workers, a fresh relay (``python -m backend api
--workers W``) runs on loopback against Redis (an embedded Valkey of its own unless
``--redis-url``); a publisher process writes U candle updates per second the way the ingest
does (SET + PUBLISH, ``emitted_at`` stamped just before); N clients in this one asyncio
process (a lean client on uvloop) subscribe to the stream and time each update from
``emitted_at`` to its arrival. Printed per run: delivered messages/s (and the share of those
expected), publish→receive latency p50/p99/max, the relay's CPU and memory (every relay
process: the workers and the process that supervises them), this client process's CPU, and
the Redis commands per second in the window (``INFO commandstats``: the publisher's SET and
PUBLISH, the workers' once-a-second figure reports; none per viewer).

    .venv/bin/python benchmarks/fanout.py                       # 100x10, 1000x10, 5000x1, one worker
    .venv/bin/python benchmarks/fanout.py --workers 1,2 --scenarios 100x1,10000x1,1000x10
    .venv/bin/python benchmarks/fanout.py --workers 1,2 --scenarios 10000x1 --floor

``--floor`` adds, beside each relay run, the machine's floor for the same scenario: no relay, no
Redis, no WebSocket, W writer processes that each ``send()`` one 60-byte stamped message to each of
their share of the N loopback TCP connections per update, and one reader process (epoll, as lean as
the client) that times each arrival. What the kernel alone costs per message on these cores: a
relay cannot beat it on the same machine.

Bounded in time: each run takes its connect time plus ``--seconds`` + a few s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import multiprocessing
import os
import resource
import selectors
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import redis
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.config import Settings  # noqa: E402
from tests.stack import Publisher, Server, descendants, make_candle, start_relay  # noqa: E402

SYMBOL = "BENCHUSDT"
INTERVAL = "1s"
WARMUP_S = 1.0
CONNECT_CONCURRENCY = 200
T = TypeVar("T")
SUBSCRIBE = f'{{"op":"subscribe","symbols":["{SYMBOL}"],"intervals":["{INTERVAL}"]}}'.encode()


class Stamp(msgspec.Struct):
    """All a client reads of each update: when it was published."""

    emitted_at: int = 0


_frame = msgspec.json.Decoder(list[Stamp] | dict)


@dataclass
class Window:
    start_ms: float = float("inf")
    end_ms: float = float("inf")
    latencies: list[float] = field(default_factory=list)
    connected: int = 0
    failed: int = 0
    flowing: asyncio.Event = field(default_factory=asyncio.Event)  # a first update arrived


def publish(settings: Settings, rate: float, seconds: float) -> None:
    """The publisher process: ``rate`` single-candle messages per second for ``seconds``."""
    publisher = Publisher(settings)
    open_time = int(time.time()) * 1000
    interval = 1.0 / rate
    next_at = time.monotonic()
    end = next_at + seconds
    seq = 0
    while next_at < end:
        seq += 1
        publisher.publish(make_candle(SYMBOL, INTERVAL, open_time, seq=seq, close=100 + seq % 10))
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    publisher.close()


def masked(opcode: int, payload: bytes) -> bytes:
    """A client-to-server frame (RFC 6455: clients mask what they send)."""
    mask = os.urandom(4)
    n = len(payload)
    header = bytes((0x80 | opcode, 0x80 | n)) if n < 126 else bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return header + mask + (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


class LeanClient(asyncio.Protocol):
    """A minimal WebSocket client: handshake, subscribe, then frames parsed straight from ``data_received``.

    A load generator must cost less than what it measures: this one spends a few
    microseconds per message where a general-purpose client library spends tens.
    """

    def __init__(self, host: str, window: Window, done: asyncio.Future[bool]) -> None:
        self.host, self.window, self.done = host, window, done
        self.buffer = bytearray()
        self.state = "handshake"  # → "ack" → "snapshot" → "live"
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            f"GET /ws HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        if self.state == "live" and not buf and len(data) > 4 and data[0] == 0x81:
            n, start = data[1], 2  # the common case: exactly one whole text frame, read in place
            if n == 126:
                n, start = int.from_bytes(data[2:4], "big"), 4
            if n < 127 and len(data) == start + n:
                self.on_text(data[start:])
                return
        buf += data
        if self.state == "handshake":
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.fail(bytes(buf[:60]))
                return
            del buf[: end + 4]
            self.state = "ack"
            assert self.transport is not None
            self.transport.write(masked(0x1, SUBSCRIBE))
        while len(buf) >= 2:
            n = buf[1] & 0x7F
            start = 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, start = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, start = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < start + n:
                return
            opcode = buf[0] & 0x0F
            payload = bytes(buf[start : start + n])
            del buf[: start + n]
            if opcode == 0x1:
                self.on_text(payload)
            elif opcode == 0x9 and self.transport is not None:
                self.transport.write(masked(0xA, payload))  # pong
            elif opcode == 0x8:
                self.fail(b"closed")
                return

    def on_text(self, payload: bytes) -> None:
        if self.state == "live":
            now = time.time() * 1000
            window = self.window
            frame = _frame.decode(payload)
            if isinstance(frame, list):
                window.flowing.set()
                for stamp in frame:
                    if window.start_ms <= stamp.emitted_at < window.end_ms:
                        window.latencies.append(now - stamp.emitted_at)
        elif self.state == "ack":
            self.state = "snapshot"
        else:
            self.state = "live"
            if not self.done.done():
                self.done.set_result(True)

    def fail(self, why: bytes) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(why.decode(errors="replace")))
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"lost: {exc!r}"))


async def lean_client(url: str, window: Window, gate: asyncio.Semaphore) -> asyncio.Transport:
    host, port = url.removeprefix("ws://").split("/", 1)[0].split(":")
    loop = asyncio.get_running_loop()
    async with gate:
        done: asyncio.Future[bool] = loop.create_future()
        transport, _ = await loop.create_connection(lambda: LeanClient(host, window, done), host, int(port))
        await asyncio.wait_for(done, 60)
    return transport


async def library_client(url: str, window: Window, gate: asyncio.Semaphore) -> asyncio.Task[None]:
    """The same client with the ``websockets`` library, for comparison (``--client websockets``)."""
    async with gate:
        ws = await connect(url, compression=None, ping_interval=None, open_timeout=120, close_timeout=1)
        await ws.send(SUBSCRIBE.decode())
        await ws.recv()  # subscribed
        await ws.recv()  # snapshot

    async def read() -> None:
        latencies = window.latencies
        with contextlib.suppress(Exception):  # the relay stopping at the end
            async for raw in ws:
                now = time.time() * 1000
                frame = _frame.decode(raw)
                if isinstance(frame, list):
                    window.flowing.set()
                    for stamp in frame:
                        if window.start_ms <= stamp.emitted_at < window.end_ms:
                            latencies.append(now - stamp.emitted_at)

    return asyncio.create_task(read())


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """uvloop when installed (as the relay uses), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_mem_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def relay_pids(relay: Server) -> list[int]:
    """Every process of the relay: the one started, and under it the workers (and their guardian)."""
    return [relay.process.pid, *descendants(relay.process.pid)]


def command_calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def commands_per_s(before: dict[str, int], after: dict[str, int], span: float) -> str:
    """The commands issued in the window, per second, but INFO (ours): ``publish 10, set 10, setex 2``."""
    counts = {k: n - before.get(k, 0) for k, n in after.items() if k != "info" and n != before.get(k, 0)}
    return ", ".join(f"{k} {n / span:.3g}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_scenario(
    relay: Server, settings: Settings, n: int, rate: float, seconds: float, kind: str
) -> dict[str, float]:
    window = Window()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    t0 = time.monotonic()
    make = lean_client if kind == "lean" else library_client
    results = await asyncio.gather(*(make(relay.ws_url, window, gate) for _ in range(n)), return_exceptions=True)
    handles = [r for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, BaseException)]
    window.connected, window.failed = len(handles), len(errors)
    for exc in errors[:3]:
        print(f"  a client failed to connect: {exc!r}", file=sys.stderr)
    connect_s = time.monotonic() - t0
    pids = relay_pids(relay)
    idle_rss = sum(proc_mem_mb(p) for p in pids)
    r = redis.Redis.from_url(settings.redis_url or "")

    ctx = multiprocessing.get_context("spawn")
    pub = ctx.Process(target=publish, args=(settings, rate, WARMUP_S + seconds + 3), daemon=True)
    pub.start()
    await asyncio.wait_for(window.flowing.wait(), 60)  # the publisher started (and added the symbol)
    await asyncio.sleep(WARMUP_S)
    window.start_ms = time.time() * 1000
    cpu0, self0, calls0 = sum(proc_cpu_s(p) for p in pids), self_cpu_s(), command_calls(r)
    await asyncio.sleep(seconds)
    window.end_ms = time.time() * 1000
    cpu1, self1, calls1 = sum(proc_cpu_s(p) for p in pids), self_cpu_s(), command_calls(r)
    rss = sum(proc_mem_mb(p) for p in pids)
    r.close()
    await asyncio.sleep(1.5)  # updates published in the window and still on their way
    pub.join(10)
    stats = relay.stats()
    relay.stop()
    for handle in handles:
        if isinstance(handle, asyncio.Task):
            handle.cancel()
        else:
            handle.abort()
    await asyncio.sleep(0.1)

    lat = window.latencies
    span = (window.end_ms - window.start_ms) / 1000
    expected = window.connected * rate * span
    return {
        "clients": window.connected,
        "failed": window.failed,
        "rate": rate,
        "connect_s": connect_s,
        "delivered_per_s": len(lat) / span,
        "delivered_share": len(lat) / expected if expected else float("nan"),
        "p50": statistics.median(lat) if lat else float("nan"),
        "p99": percentile(lat, 0.99),
        "max": max(lat) if lat else float("nan"),
        "relay_cpu": (cpu1 - cpu0) / span * 100,
        "relay_rss": rss,
        "relay_rss_idle": idle_rss,
        "clients_cpu": (self1 - self0) / span * 100,
        "coalesced": stats["coalesced"],
        "slow_disconnects": stats["slow_disconnects"],
        "workers": len(stats["workers"]),
        "spread": "/".join(str(w["connections"]) for w in stats["workers"]),
        "redis": commands_per_s(calls0, calls1, span),
    }


FLOOR_MESSAGE_BYTES = 60  # about one candle update's frame


def floor_writer(listener: socket.socket, n: int, rate: float, seconds: float, ready: Any, go: Any) -> None:
    """A floor writer process: accept ``n`` connections, then per update one ``send()`` to each, stamped."""
    conns = []
    while len(conns) < n:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns.append(conn)
    ready.set()
    go.wait()
    next_at, end = time.monotonic(), time.monotonic() + seconds
    while next_at < end:
        stamp = f"{time.time() * 1000:.3f}".encode().ljust(FLOOR_MESSAGE_BYTES)
        for conn in conns:
            conn.send(stamp)
        next_at += 1.0 / rate
        time.sleep(max(0.0, next_at - time.monotonic()))
    time.sleep(1.0)  # the last update is still on its way to the reader


def floor_reader(ports: list[int], shares: list[int], seconds: float, out: Any) -> None:
    """The floor's reader process: every connection, then each message's arrival time minus its stamp."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sel = selectors.EpollSelector()
    socks = []
    for port, share in zip(ports, shares, strict=True):
        for _ in range(share):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ)
            socks.append(sock)
    latencies: list[float] = []
    cpu0 = self_cpu_s()
    end = time.monotonic() + seconds + 60
    open_socks = len(socks)
    while open_socks and time.monotonic() < end:
        events = sel.select(2.0)
        if not events and latencies:
            break  # the writers have stopped
        for key, _ in events:
            sock = key.fileobj
            data = sock.recv(65536)  # type: ignore[union-attr]
            now = time.time() * 1000
            if not data:  # the writer is done with it
                sel.unregister(sock)
                sock.close()  # type: ignore[union-attr]
                open_socks -= 1
                continue
            for k in range(0, len(data) - FLOOR_MESSAGE_BYTES + 1, FLOOR_MESSAGE_BYTES):
                latencies.append(now - float(data[k : k + FLOOR_MESSAGE_BYTES]))
    out.put((latencies, self_cpu_s() - cpu0))


def run_floor(n: int, rate: float, seconds: float, writers: int) -> dict[str, Any]:
    """The scenario's floor: ``writers`` processes sending to ``n`` loopback connections, one reader process."""
    ctx = multiprocessing.get_context("fork")
    shares = [n // writers + (1 if i < n % writers else 0) for i in range(writers)]
    listeners = []
    for _ in range(writers):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(4096)
        listeners.append(listener)
    ready = [ctx.Event() for _ in range(writers)]
    go, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=floor_writer, args=(lst, share, rate, seconds, r, go), daemon=True)
        for lst, share, r in zip(listeners, shares, ready, strict=True)
    ]
    for proc in procs:
        proc.start()
    ports = [lst.getsockname()[1] for lst in listeners]
    reader = ctx.Process(target=floor_reader, args=(ports, shares, seconds, out), daemon=True)
    reader.start()
    for r in ready:
        r.wait(120)
    time.sleep(WARMUP_S)
    cpu0 = sum(proc_cpu_s(p.pid) for p in procs if p.pid is not None)
    go.set()
    latencies, reader_cpu = out.get(timeout=seconds + 180)
    cpu1 = sum(proc_cpu_s(p.pid) for p in procs if p.pid is not None)
    for proc in (*procs, reader):
        proc.join(10)
    for listener in listeners:
        listener.close()
    span = len(latencies) / (n * rate) if n * rate else float("nan")  # the seconds the reader got updates for
    return {
        "clients": n,
        "rate": rate,
        "workers": writers,
        "delivered_per_s": len(latencies) / span if span else float("nan"),
        "delivered_share": 1.0 if latencies else 0.0,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies) if latencies else float("nan"),
        "relay_cpu": (cpu1 - cpu0) / span * 100 if span else float("nan"),
        "relay_rss": float("nan"),
        "clients_cpu": reader_cpu / span * 100 if span else float("nan"),
        "redis": "floor: send() only, no relay",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="100x10,1000x10,5000x1", help="CLIENTSxUPDATES_PER_S, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per scenario")
    parser.add_argument("--workers", default="1", help="relay workers, comma-separated: each scenario runs with each")
    parser.add_argument("--redis-url", help="a Redis to use (default: start an embedded Valkey)")
    parser.add_argument(
        "--client", choices=("lean", "websockets"), default="lean", help="client implementation (default: lean)"
    )
    parser.add_argument(
        "--floor", action="store_true", help="also run each scenario as bare send()s on loopback: the kernel's floor"
    )
    args = parser.parse_args()
    scenarios = [(int(c), float(u)) for c, u in (s.split("x") for s in args.scenarios.split(","))]
    worker_counts = [int(w) for w in args.workers.split(",")]
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    valkey = None
    url = args.redis_url
    if not url:
        from backend.embedded import EmbeddedValkey

        valkey = EmbeddedValkey()
        url = valkey.url
    most = max(n for n, _ in scenarios)  # every client connects from 127.0.0.1: lift the per-address limit
    base = Settings(
        redis_url=url,
        data_dir=Path("/tmp/candles-bench"),
        log_level="WARNING",
        ws_max_connections=max(most, 10_000),
        ws_max_connections_per_address=most,
    )
    base.data_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"fan-out benchmark on {os.cpu_count()} cores, Redis {url}, {args.seconds:.0f} s per scenario, "
        f"{args.client} clients"
    )
    rows = []
    try:
        for n, rate in scenarios:
            for workers in worker_counts:
                tag = f"bench{uuid.uuid4().hex[:8]}"
                settings = base.model_copy(
                    update=dict(redis_prefix=tag, updates_channel=f"{tag}:updates", alerts_channel=f"{tag}:alerts",
                                workers=workers)
                )  # fmt: skip
                relay = start_relay(settings, log_dir=settings.data_dir, timeout=60)
                relay.wait_until(lambda: len(relay.worker_pids()) == workers, 60, f"{workers} workers")  # noqa: B023
                print(f"- {n} clients x {rate:g} updates/s, {workers} worker(s) ...", flush=True)
                row = run_loop(run_scenario(relay, settings, n, rate, args.seconds, args.client))
                rows.append(row)
                print(
                    f"  connected {row['clients']:.0f} in {row['connect_s']:.1f} s (per worker {row['spread']});"
                    f" delivered {row['delivered_per_s']:,.0f} msg/s ({row['delivered_share']:.1%}); latency p50"
                    f" {row['p50']:.1f} ms, p99 {row['p99']:.1f} ms, max {row['max']:.1f} ms; relay CPU"
                    f" {row['relay_cpu']:.0f}%, RSS {row['relay_rss']:.0f} MB; Redis commands/s: {row['redis']}",
                    flush=True,
                )
                if args.floor:
                    floor = run_floor(n, rate, args.seconds, workers)
                    rows.append(floor)
                    print(
                        f"  floor (bare send() by {workers} process(es), one reader): p50 {floor['p50']:.1f} ms,"
                        f" p99 {floor['p99']:.1f} ms, max {floor['max']:.1f} ms; writers' CPU"
                        f" {floor['relay_cpu']:.0f}%, reader's CPU {floor['clients_cpu']:.0f}%",
                        flush=True,
                    )
    finally:
        if valkey is not None:
            valkey.stop()
    print()
    print(
        "| clients | updates/s | workers | delivered msg/s | p50 ms | p99 ms | max ms | relay CPU | relay RSS "
        "| client CPU | Redis commands/s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['clients']:,.0f} | {r['rate']:g} | {r['workers']} | {r['delivered_per_s']:,.0f} "
            f"({r['delivered_share']:.0%}) | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | {r['relay_cpu']:.0f}% "
            f"| {r['relay_rss']:.0f} MB | {r['clients_cpu']:.0f}% | {r['redis']} |".replace("| nan MB |", "| - |")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Least privilege of a full stack, checked on the running processes: loopback listeners only, a Redis
that refuses whoever lacks its password, and no secret in any log line."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path

import pytest
import redis

from backend.config import Settings
from backend.embedded import resolve
from tests.dashboard_fixtures import StreamlitApp
from tests.stack import start_stack

pytestmark = [
    pytest.mark.integration,
    pytest.mark.resilience,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads listening sockets from /proc (Linux)"),
]

TOKEN = "exposure-t0ken-value"


def process_tree(root: int) -> set[int]:
    """``root`` and every process descended from it (from /proc/PID/task/*/children)."""
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in task.read_text().split())
    return found


def socket_inodes(pids: set[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def listening_addresses(pids: set[int]) -> list[str]:
    """``host:port`` of every TCP socket in LISTEN state held by ``pids`` (what ``ss -ltnp`` shows)."""
    inodes = socket_inodes(pids)
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            host_hex, port_hex = local.split(":")
            assert len(host_hex) == width
            raw = bytes.fromhex(host_hex)
            # /proc prints each 32-bit word in host (little-endian) order
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            host = ".".join(map(str, words)) if width == 8 else words.hex(":", 2)
            found.append(f"{host}:{int(port_hex, 16)}")
    return found


LOOPBACK = re.compile(
    r"^(127\.\d+\.\d+\.\d+|0000:0000:0000:0000:0000:0000:0000:0001|0000:0000:0000:0000:0000:ffff:7f00:0001):\d+$"
)


def test_a_full_stack_listens_on_loopback_only_and_keeps_its_secrets(tmp_path: Path) -> None:
    stack = start_stack({"CANDLES_API_TOKEN": TOKEN}, data_dir=tmp_path, log_dir=tmp_path)
    app = None
    try:
        app = StreamlitApp(
            stack.url, log_dir=tmp_path, extra_env={"CANDLES_API_TOKEN": TOKEN}, address=None
        )  # no --server.address: the project's .streamlit/config.toml decides
        pids = process_tree(stack.process.pid) | {app.process.pid}
        listeners = listening_addresses(pids)
        port_of = {int(a.rsplit(":", 1)[1]) for a in listeners}
        assert {int(stack.url.rsplit(":", 1)[1]), app.port} <= port_of, listeners
        assert len(listeners) >= 3, listeners  # relay, Streamlit, embedded Valkey
        assert all(LOOPBACK.match(a) for a in listeners), listeners

        if resolve(Settings.from_env().embedded) == "python":
            pytest.skip("the pure-Python fallback server (fakeredis) cannot require a password; loopback only")
        # the embedded Valkey has a password: its children got it in their environment, nobody else has it
        ingest = next(pid for pid in pids if b"\0ingest\0" in Path(f"/proc/{pid}/cmdline").read_bytes() + b"\0")
        env = dict(
            item.split("=", 1) for item in Path(f"/proc/{ingest}/environ").read_text().split("\0") if "=" in item
        )
        url = env["CANDLES_REDIS_URL"]
        password, port = re.fullmatch(r"redis://:([^@]+)@127\.0\.0\.1:(\d+)/0", url).groups()  # type: ignore[union-attr]
        forger = redis.Redis(port=int(port), socket_timeout=5)
        with pytest.raises(redis.exceptions.AuthenticationError):
            forger.publish("crypto:updates", '[{"type":"candle","symbol":"<img src=x onerror=alert(1)>"}]')
        with pytest.raises(redis.exceptions.AuthenticationError):
            forger.sadd("candles:symbols", "<script>alert(1)</script>")
        forger.close()
        assert redis.Redis.from_url(url).ping()

        logs = "\n".join(p.read_text(errors="replace") for p in tmp_path.glob("*.log"))
        assert "embedded Valkey started at redis://:***@127.0.0.1:" in logs
        assert password not in logs and TOKEN not in logs
    finally:
        if app is not None:
            app.stop()
        stack.stop()

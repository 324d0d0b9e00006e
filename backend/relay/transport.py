"""The WebSocket transport: uvicorn's protocol, fixed for fan-out, and prebuilt frames.

The server offers, in the WebSocket scope's extensions, a function that writes
a prebuilt frame to the connection at once (True) or declines (False: closed,
or its buffer is full). Frames then cost one write per client, the same bytes
for all; without it every send goes through ASGI.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Callable
from typing import Any

WRITE_FRAME_EXTENSION = "candles.write_frame"
WS_SEND_BUFFER_BYTES = 256 * 1024  # per WebSocket; the kernel doubles it

WriteFrame = Callable[[bytes], bool]


def text_frame(payload: bytes) -> bytes:
    """A server-to-client WebSocket text frame (RFC 6455: final, unmasked) around ``payload``."""
    n = len(payload)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    return header + payload


def websocket_protocol() -> Any:
    """uvicorn's sans-I/O WebSocket protocol, fixed so a peer that stopped reading is let go.

    uvicorn waits for the write buffer to drain before it sends a close frame,
    and closes gracefully (waiting for that buffer) on a keepalive timeout: a
    peer that stopped reading never drains it, so the socket would stay open
    forever. Here the close frame is queued behind the unsent data at once and
    the connection is aborted when it has not finished closing after a grace.
    Each WebSocket's kernel send buffer is bounded too, so the updates a client
    has not read cannot hide there for long (nor cost megabytes per client).
    And the relay may write prebuilt frames directly (``write_frame``), which
    is what makes fan-out to thousands of clients cheap.
    """
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    except ImportError:  # an older uvicorn: its default protocol
        return "auto"

    class RelayWebSocketProtocol(WebSocketsSansIOProtocol):
        abort_after_s = 5.0

        def handle_connect(self, event: Any) -> None:
            super().handle_connect(event)
            scope = getattr(self, "scope", None)
            if scope is not None and hasattr(self, "writable"):  # the app task starts on the next turn, sees this
                scope.setdefault("extensions", {})[WRITE_FRAME_EXTENSION] = self.write_frame

        def write_frame(self, frame: bytes) -> bool:
            """Write a prebuilt frame now: the relay's fan-out path (same bytes to every client, no task switch).

            Declines (False) unless the connection is open, has room in its write
            buffer and negotiated no extension that would transform frames.
            """
            if (
                self.close_sent
                or self.disconnected
                or not self.handshake_complete
                or not self.writable.is_set()
                or self.conn.extensions
                or self.transport.is_closing()
            ):
                return False
            self.transport.write(frame)
            return True

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            if sock is not None:  # a bounded kernel buffer: a stalled peer shows as behind within seconds
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, WS_SEND_BUFFER_BYTES)

        async def send(self, message: Any) -> None:
            writable = getattr(self, "writable", None)
            if (
                message["type"] == "websocket.close"
                and writable is not None
                and not writable.is_set()
                and self.handshake_complete
                and not self.close_sent
                and not self.disconnected
            ):
                code = message.get("code", 1000)
                reason = message.get("reason") or ""
                self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
                self.conn.send_close(code, reason)
                self.transport.write(b"".join(self.conn.data_to_send()))
                self.close_sent = True
                self._abort_later()
                return
            await super().send(message)

        def keepalive_timeout(self) -> None:
            super().keepalive_timeout()
            self._abort_later()

        def _abort_later(self) -> None:
            self.loop.call_later(self.abort_after_s, self._abort)

        def _abort(self) -> None:
            if not self.disconnected:
                self.transport.abort()

    return RelayWebSocketProtocol

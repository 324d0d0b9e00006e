"""A local webhook receiver for alert tests: records every POST; can answer 500 or hang on demand."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookReceiver:
    """``url`` receives POSTs; ``fail_first`` answers that many with 500, ``hang_s`` delays every answer."""

    def __init__(self, *, fail_first: int = 0, status: int = 500, hang_s: float = 0.0) -> None:
        self.bodies: list[bytes] = []
        self.arrivals: list[float] = []  # time.time() at arrival
        self.attempts = 0
        self.fail_first, self.status, self.hang_s = fail_first, status, hang_s
        self.received = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # answer at once, like a production server

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.received:
                    receiver.attempts += 1
                    failing = receiver.attempts <= receiver.fail_first
                if receiver.hang_s:
                    time.sleep(receiver.hang_s)
                self.send_response(receiver.status if failing else 204)
                self.end_headers()
                if not failing:
                    with receiver.received:
                        receiver.bodies.append(body)
                        receiver.arrivals.append(time.time())
                        receiver.received.notify_all()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/s3cr3t-token-value"

    def wait_for(self, n: int, timeout: float = 30.0) -> list[bytes]:
        with self.received:
            self.received.wait_for(lambda: len(self.bodies) >= n, timeout)
            return list(self.bodies)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

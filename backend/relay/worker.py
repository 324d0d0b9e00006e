"""``python -m backend.relay.worker``: one relay worker, started by :mod:`backend.relay.workers`.

It serves the listening socket it inherited (``CANDLES_WORKER_FD``) with the settings
its supervisor passed as JSON (``CANDLES_WORKER_SETTINGS``), exactly as a single relay would.
"""

from __future__ import annotations

import os
import socket

from backend.config import Settings
from backend.logs import configure_logging
from backend.relay.server import serve_here
from backend.relay.workers import FD_ENV, SETTINGS_ENV


def main() -> None:
    settings = Settings.model_validate_json(os.environ.pop(SETTINGS_ENV))
    sock = socket.socket(fileno=int(os.environ.pop(FD_ENV)))
    configure_logging(settings.log_level, process=True)
    serve_here(settings, sock)


if __name__ == "__main__":
    main()

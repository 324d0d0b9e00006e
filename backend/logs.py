"""The backend's log lines: one format, and secrets replaced before any line is written.

uvicorn logs each WebSocket handshake with its full path, query string included
(``"WebSocket /ws?token=…" [accepted]``), and a library may log a header; the
filter sits on the handlers, so it sees every record, whichever logger made it.
"""

from __future__ import annotations

import logging
import re

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
SECRET_RE = re.compile(
    r"((?:[?&\s\"']|^)(?:token|password|api_key|apikey|secret)=)[^&\s\"']+"  # query and key=value
    r"|(Bearer )\S+"  # Authorization headers
    r"|([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@/\s]+(?=@)",  # the password of redis://user:pw@host
    re.I,
)
REDACTED = "***"


def redact(text: str) -> str:
    """``text`` with the values of ``token=``, ``password=``, …, ``Bearer`` credentials and URL passwords as ``***``."""
    return SECRET_RE.sub(lambda m: (m.group(1) or m.group(2) or m.group(3)) + REDACTED, text)


class RedactSecrets(logging.Filter):
    """Rewrites a record's message with :func:`redact` (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure_logging(level: str | int, *, process: bool = False) -> None:
    """Log to stderr at ``level`` in :data:`FORMAT` (with the pid: one of several workers), every handler redacting
    secrets."""
    logging.basicConfig(level=level, format=FORMAT.replace("%(name)s", "%(name)s[%(process)d]") if process else FORMAT)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets())
    logging.getLogger("alembic").setLevel(logging.WARNING)  # backend.migrations logs one line per upgrade

"""Alert targets: validated on save, shown and logged only with their secrets masked.

``http(s)://`` targets are plain JSON webhooks (the ``alert`` wire object is POSTed); any other scheme
is an Apprise URL (``tgram://``, ``discord://``, ``slack://``, ``mailto://``, ``json://``, …), which
Apprise itself validates: it speaks 100+ services, so no per-service code lives here.
"""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_TARGETS = 10
MAX_URL_CHARS = 2048
SHOWN_CHARS = 4  # of a secret-looking path segment: enough to tell two targets apart


def is_webhook(url: str) -> bool:
    return url.split("://", 1)[0].lower() in {"http", "https"}


def validate_target(url: str) -> str:
    """The target, stripped; ValueError with the reason when it cannot be delivered to."""
    url = url.strip()
    if not url or len(url) > MAX_URL_CHARS:
        raise ValueError(f"a target is a URL of 1 to {MAX_URL_CHARS} characters")
    if "://" not in url:
        raise ValueError(f"{mask(url)!r} is not a URL: use https://… for a webhook or an Apprise URL such as tgram://…")
    if is_webhook(url):
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError(f"{mask(url)!r} has no host")
        return url
    import apprise  # imported here: only saving a chat/e-mail target needs it

    if apprise.Apprise.instantiate(url) is None:
        scheme = url.split("://", 1)[0]
        raise ValueError(f"{scheme}:// is not a URL Apprise can deliver to (see the Apprise wiki for its URL forms)")
    return url


def validate_targets(urls: list[str]) -> list[str]:
    if len(urls) > MAX_TARGETS:
        raise ValueError(f"at most {MAX_TARGETS} targets per rule")
    return list(dict.fromkeys(validate_target(u) for u in urls))


def mask(url: str) -> str:
    """The URL with its secrets hidden: password, query values and the path's long segments.

    ``https://hooks.slack.com/services/T000/B000/XXXXXXXX`` → ``https://hooks.slack.com/services/T000/B000/XXXX…``;
    ``tgram://123456:AAbbCC/987`` → ``tgram://1234…/987``. Written by hand because Apprise's own
    privacy form only covers its schemes and leaves webhook tokens in paths visible.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _hide(url)
    rest = rest.split("#", 1)[0]
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    userinfo, at, host = netloc.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        userinfo = _hide(user) + (":****" if colon else "") + "@"
    if not is_webhook(url) and "." not in host:  # Apprise "hosts" are often tokens (tgram://BOT_TOKEN/CHAT)
        host = _hide(host)
    masked_path = "/".join(_hide(seg) for seg in path.split("/")) if tail else ""
    masked_query = "&".join(f"{kv.split('=', 1)[0]}=****" if "=" in kv else kv for kv in query.split("&") if kv)
    return f"{scheme}://{userinfo}{host}" + (f"/{masked_path}" if tail else "") + (f"?{masked_query}" if query else "")


def _hide(segment: str) -> str:
    """Short words stay (``services``, ``api``, ``v1``); long or digit-laden ones look like secrets."""
    if len(segment) <= 12 and not any(ch.isdigit() for ch in segment):
        return segment
    if len(segment) <= SHOWN_CHARS:
        return segment
    return segment[:SHOWN_CHARS] + "…"

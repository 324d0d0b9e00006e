"""The dashboard's web server: Streamlit's own, with the two things about URLs it has no setting for.

``app.py`` holds an ``st.App`` (Streamlit's ASGI mode): ``streamlit run app.py`` finds it, imports
``app.py`` once as the server (this module's code runs then, before any session), and runs ``app.py``
as the navigation script for every session (:func:`is_script_run` tells the two apart).

- :func:`no_legacy_pages_dir`: Streamlit decides once per process, when the first session starts,
  whether ``pages/`` beside the main script is a legacy multipage directory; until ``st.navigation``
  is first called, the first run routes the URL through that directory, so a fresh server's first
  visit by an unknown path got the "Page not found" modal and a deep link ran its page alone.
- :class:`NestedPathRedirect`: Streamlit answers any unknown path with its ``index.html``, whose
  assets load by relative path, so at a nested path (``/a/b``) they resolve under ``/a/`` and come
  back as ``index.html`` again: a blank page. A nested path that would get that page is sent to the
  same path as one segment (``/a%2Fb``), which the navigation reports as unknown (``services/ui/routes.py``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

from starlette.responses import RedirectResponse
from starlette.routing import Match, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send


def no_legacy_pages_dir() -> None:
    """Tell Streamlit, before its first session, that ``pages/`` is not a legacy multipage directory
    (what its ``st.navigation`` sets on its first call, one run too late for a first visit)."""
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False


def is_script_run(module_name: str) -> bool:
    """Streamlit runs the main script as ``__main__``; the server imports ``app.py`` by its own name."""
    return module_name == "__main__"


def base_path(root_path: str = "") -> str:
    """Where the app's pages start: the ASGI root path plus Streamlit's ``server.baseUrlPath``."""
    from streamlit import config

    base = (config.get_option("server.baseUrlPath") or "").strip("/")
    return root_path.rstrip("/") + (f"/{base}" if base else "")


def flattened(raw_path: str, root_path: str = "") -> str | None:
    """The one-segment URL for a nested path below the app's root (``/a/b`` → ``/a%2Fb``); None when the
    path, as sent (percent-encoded), has one segment or none."""
    rest = raw_path[len(root_path) :] if root_path and raw_path.startswith(root_path) else raw_path
    parts = [p for p in rest.split("/") if p]
    if len(parts) < 2:
        return None
    return f"{root_path.rstrip('/')}/{quote(unquote('/'.join(parts)), safe='')}"


def _answered_by_index(app: Any, scope: Scope) -> bool:
    """Whether Streamlit would answer with its ``index.html`` fallback: no route but the catch-all static
    mount matches, and that mount has no file at the path."""
    for route in getattr(app, "routes", ()):
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        static = route.app if isinstance(route, Mount) else None
        if not isinstance(static, StaticFiles):
            return False  # a route of its own (API, media, component, the app's static files)
        _, found = static.lookup_path(static.get_path({**scope, **child}))
        return found is None
    return True


class NestedPathRedirect:
    """ASGI middleware: a page request for a nested unknown path is redirected to its one-segment form."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            raw = scope.get("raw_path") or scope["path"].encode()
            target = flattened(raw.decode("latin-1"), base_path(scope.get("root_path", "")))
            if target is not None and _answered_by_index(scope.get("app"), scope):
                query = scope.get("query_string", b"").decode("latin-1")
                moved = RedirectResponse(target + (f"?{query}" if query else ""), 307, {"Cache-Control": "no-cache"})
                await moved(scope, receive, send)
                return
        await self.app(scope, receive, send)

"""A page's view lives in the URL (``?symbol=ETHUSDT&interval=5m``): read it safely, say what was refused, write it
back."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import streamlit as st


@dataclass(frozen=True)
class Choice:
    """A query parameter's value as shown, and what the URL asked for when that could not be shown."""

    value: str
    asked: str | None = None


def _folded(text: str) -> str:
    return text.strip().lower()


def pick(raw: str | None, options: Sequence[str], default: str, key: Callable[[str], str] = _folded) -> Choice:
    """``raw`` constrained to ``options`` (compared by ``key``: case-insensitive by default), else the default
    with what was asked (pure)."""
    if raw is None or not str(raw).strip():
        return Choice(default)
    wanted = key(str(raw))
    for opt in options:
        if key(opt) == wanted:
            return Choice(opt)
    return Choice(default, asked=str(raw))


def query_pick(name: str, options: Sequence[str], default: str, key: Callable[[str], str] = _folded) -> Choice:
    """:func:`pick` on the query parameter ``name``."""
    return pick(st.query_params.get(name), options, default, key)


def query_choice(name: str, options: Sequence[str], default: str) -> str:
    """A query parameter constrained to ``options`` (case-insensitive), else the default."""
    return query_pick(name, options, default).value


def refused_text(refused: Sequence[tuple[str, str]], shown: str) -> str:
    """What a link asked for that can't be shown, why, and what is shown instead (pure; Markdown).

    ``refused`` holds (what was asked, why not) pairs.
    """
    asked = " · ".join(f"**{plain(a)}**" for a, _ in refused)
    why = "; ".join(w for _, w in refused)
    return f"The link asked for {asked}, which can't be shown: {why}. Showing **{shown}** instead."


def plain(text: str, limit: int = 40) -> str:
    """A URL's text inside Markdown: no markup characters, bounded length."""
    cleaned = "".join(ch for ch in text if ch.isalnum() or ch in " ./:-_,+=")
    return cleaned[:limit] + ("…" if len(cleaned) > limit else "")


def set_query(**values: str | None) -> None:
    """Write the view into the URL so it can be shared; None removes a parameter."""
    for name, value in values.items():
        if value is None or value == "":
            if name in st.query_params:
                del st.query_params[name]
        elif st.query_params.get(name) != value:
            st.query_params[name] = value

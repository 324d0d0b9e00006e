"""A page's view lives in the URL (``?symbol=ETHUSDT&interval=5m``): read it safely, write it back."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st


def query_choice(name: str, options: Sequence[str], default: str) -> str:
    """A query parameter constrained to ``options`` (case-insensitive), else the default."""
    raw = st.query_params.get(name)
    if raw is None:
        return default
    for opt in options:
        if opt.lower() == str(raw).lower():
            return opt
    return default


def set_query(**values: str | None) -> None:
    """Write the view into the URL so it can be shared; None removes a parameter."""
    for name, value in values.items():
        if value is None or value == "":
            if name in st.query_params:
                del st.query_params[name]
        elif st.query_params.get(name) != value:
            st.query_params[name] = value

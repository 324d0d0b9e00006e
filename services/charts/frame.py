"""Candles as a column frame: the one input every candle figure and indicator takes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from backend.models import Candle

COLUMNS = (
    "open_time",
    "close_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "closed",
    "seq",
    "event_time",
    "emitted_at",
)


def candles_frame(candles: Sequence[Candle]) -> pd.DataFrame:
    """Candles (oldest first) → a column frame with :data:`COLUMNS`."""
    if not candles:
        return pd.DataFrame({name: pd.Series(dtype=_dtype(name)) for name in COLUMNS})
    rows = [tuple(getattr(c, name) for name in COLUMNS) for c in candles]
    df = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
    return df.astype({name: _dtype(name) for name in COLUMNS})


def _dtype(name: str) -> str:
    if name == "closed":
        return "bool"
    if name in {"open_time", "close_time", "trades", "seq", "event_time", "emitted_at"}:
        return "int64"
    return "float64"


def direction(df: pd.DataFrame) -> np.ndarray:
    """True where a candle closed at or above its open (drawn green)."""
    return (df["close"].to_numpy() >= df["open"].to_numpy()).astype(bool)

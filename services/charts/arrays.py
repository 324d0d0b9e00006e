"""Numeric arrays as figures carry them: Plotly's compact typed-array form, wall-clock times."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd


def wall_clock_ms(open_time_ms: np.ndarray | pd.Series, tz: str) -> np.ndarray:
    """Epoch ms → the same instants as wall-clock ms in ``tz`` (Plotly draws numbers as UTC)."""
    ms = np.asarray(open_time_ms, dtype=np.int64)
    if tz in {"UTC", "Etc/UTC", ""} or len(ms) == 0:
        return ms.astype(np.float64)
    stamps = pd.DatetimeIndex(pd.to_datetime(ms, unit="ms", utc=True)).tz_convert(tz).tz_localize(None)
    return (stamps.asi8 // 1_000_000 if stamps.unit == "ns" else _as_ms(stamps)).astype(np.float64)


def _as_ms(stamps: pd.DatetimeIndex) -> np.ndarray:
    return stamps.as_unit("ms").asi8


def typed(values: np.ndarray | pd.Series) -> dict[str, str]:
    """A numeric array in Plotly's typed-array form: ``{"dtype": "f8", "bdata": base64}``."""
    arr = np.asarray(values)
    if arr.dtype == np.bool_ or arr.dtype == np.uint8:
        arr, code = arr.astype(np.uint8), "u1"
    else:
        arr, code = arr.astype(np.float64), "f8"
    return {"dtype": code, "bdata": base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode("ascii")}

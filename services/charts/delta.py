"""What changed between two figures of the same chart: the patch a browser holding the old one needs.

A live chart changes at its end: the forming candle moves, a new candle comes, the oldest one leaves the
window, and the indicator points those touch move with them. A patch says, per trace that changed, how
many points leave the front (``drop``), how many of the old points that follow stay (``keep``) and the new
points after them (``tail``, typed arrays like the figure's, or plain lists when short), plus the non-array
properties and the layout entries that changed (down to the one number of a shape that moved).
``None`` means "send the whole figure": the traces differ in number or kind, or the
windows do not overlap. Pure: figure dicts in (as :mod:`services.charts.candles` builds them, numeric
arrays in Plotly's typed-array form), patch out; :func:`apply_patch` is what the browser does, in Python,
so the two can be checked against each other.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

Path = tuple[str, ...]

_DTYPES = {"f8": np.float64, "u1": np.uint8}


def is_typed(value: Any) -> bool:
    return isinstance(value, dict) and "bdata" in value and "dtype" in value


def decode(value: dict[str, str] | list[float]) -> np.ndarray:
    """A typed-array dict (``{"dtype", "bdata"}``), or a patch's short tail as a plain list, as a numpy array."""
    if isinstance(value, list):
        return np.asarray(value, dtype=np.float64)
    return np.frombuffer(base64.b64decode(value["bdata"]), dtype=_DTYPES[value["dtype"]])


def encode(arr: np.ndarray, dtype: str) -> dict[str, str]:
    return {"dtype": dtype, "bdata": base64.b64encode(np.ascontiguousarray(arr, dtype=_DTYPES[dtype])).decode()}


SHORT_TAIL = 4  # up to this many finite values, a tail goes as a plain list: shorter than base64 and its keys


def encode_tail(arr: np.ndarray, dtype: str) -> dict[str, str] | list[float]:
    """A patch's new points: a plain list when short and finite (``[96841.25]`` against
    ``{"dtype":"f8","bdata":"AAAAAJSk90A="}``; JSON numbers round-trip float64 exactly), else a typed array."""
    if len(arr) <= SHORT_TAIL and np.isfinite(arr).all():
        return [int(v) for v in arr] if dtype == "u1" else [float(v) for v in arr]
    return encode(arr, dtype)


def array_paths(trace: dict[str, Any]) -> list[Path]:
    """Where a trace holds typed arrays: top-level keys, or one level down (``marker.color``)."""
    paths: list[Path] = []
    for k, v in trace.items():
        if is_typed(v):
            paths.append((k,))
        elif isinstance(v, dict):
            paths.extend((k, kk) for kk, vv in v.items() if is_typed(vv))
    return paths


def _get(trace: dict[str, Any], path: Path) -> Any:
    for k in path:
        trace = trace[k]
    return trace


def _without_arrays(trace: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in trace.items():
        if is_typed(v):
            continue
        out[k] = {kk: vv for kk, vv in v.items() if not is_typed(vv)} if isinstance(v, dict) else v
    return out


def _same_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """How many leading values ``a`` and ``b`` share (NaN equals NaN: an indicator's warm-up)."""
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    same = a == b
    if a.dtype.kind == "f":
        same |= np.isnan(a) & np.isnan(b)
    diff = np.flatnonzero(~same)
    return int(diff[0]) if len(diff) else n


def trace_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | bool | None:
    """One trace's patch; ``False`` when unchanged; ``None`` when it cannot be patched (send the figure)."""
    paths = array_paths(new)
    if paths != array_paths(old) or ("x",) not in paths:
        return None
    old_rest, new_rest = _without_arrays(old), _without_arrays(new)
    for k, v in new_rest.items():  # nested dicts that hold arrays (marker) must match apart from their arrays
        if isinstance(v, dict) and any((k, kk) in paths for kk in new[k]) and v != old_rest.get(k):
            return None
    set_props = {k: v for k, v in new_rest.items() if old_rest.get(k) != v}
    if set(old_rest) - set(new_rest):
        return None
    old_arrays = {p: decode(_get(old, p)) for p in paths}
    new_arrays = {p: decode(_get(new, p)) for p in paths}
    if any(_get(old, p)["dtype"] != _get(new, p)["dtype"] for p in paths):
        return None
    ox, nx = old_arrays[("x",)], new_arrays[("x",)]
    if len(nx) == 0 or len(ox) == 0:
        return None
    drop = int(np.searchsorted(ox, nx[0]))
    if drop >= len(ox) or ox[drop] != nx[0]:
        return None  # the new window does not start inside the old one (a longer range, a jump)
    keep = min(_same_prefix(old_arrays[p][drop:], new_arrays[p]) for p in paths)
    if drop == 0 and keep == len(ox) == len(nx) and not set_props:
        return False
    tail = {".".join(p): encode_tail(new_arrays[p][keep:], _get(new, p)["dtype"]) for p in paths}
    return {"drop": drop, "keep": keep, "tail": tail, "set": set_props}


def figure_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    """The patch that turns figure ``old`` into ``new`` in the browser, or None: send ``new`` whole."""
    old_data, new_data = old.get("data", []), new.get("data", [])
    if len(old_data) != len(new_data):
        return None
    traces: dict[str, Any] = {}
    for i, (a, b) in enumerate(zip(old_data, new_data, strict=True)):
        if a.get("type") != b.get("type"):
            return None
        p = trace_patch(a, b)
        if p is None:
            return None
        if p is not False:
            traces[str(i)] = p
    old_layout, new_layout = old.get("layout", {}), new.get("layout", {})
    layout = {k: value_patch(old_layout.get(k), v) for k, v in new_layout.items() if old_layout.get(k) != v}
    removed = sorted(set(old_layout) - set(new_layout))
    return {"traces": traces, "layout": layout, "layout_removed": removed}


def value_patch(old: Any, new: Any) -> dict[str, Any]:
    """A layout value's change, as small as the last-price line moving: ``$set`` a value, ``$merge`` a dict's changed
    entries (same keys), ``$items`` a list's changed items (same length); ``old != new``."""
    if isinstance(old, dict) and isinstance(new, dict) and old.keys() == new.keys():
        return {"$merge": {k: value_patch(old[k], v) for k, v in new.items() if old[k] != v}}
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return {"$items": {str(i): value_patch(a, b) for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b}}
    return {"$set": new}


def patched_value(old: Any, patch: dict[str, Any]) -> Any:
    """:func:`value_patch` applied (the component's JavaScript does the same)."""
    if "$set" in patch:
        return patch["$set"]
    if "$merge" in patch:
        return {**old, **{k: patched_value(old[k], p) for k, p in patch["$merge"].items()}}
    items = list(old)
    for i, p in patch["$items"].items():
        items[int(i)] = patched_value(items[int(i)], p)
    return items


def apply_patch(fig: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``fig`` with ``patch`` applied (what the component's JavaScript does); ``fig`` is left as it was."""
    data = []
    for i, trace in enumerate(fig["data"]):
        p = patch["traces"].get(str(i))
        if p is None:
            data.append(trace)
            continue
        out = {k: (dict(v) if isinstance(v, dict) and not is_typed(v) else v) for k, v in trace.items()}
        for path in array_paths(trace):
            arr = decode(_get(trace, path))
            tail = decode(p["tail"][".".join(path)])
            merged = encode(np.concatenate([arr[p["drop"] : p["drop"] + p["keep"]], tail]), _get(trace, path)["dtype"])
            if len(path) == 1:
                out[path[0]] = merged
            else:
                out[path[0]][path[1]] = merged
        out.update(p["set"])
        data.append(out)
    layout = {k: v for k, v in fig["layout"].items() if k not in patch["layout_removed"]}
    for k, p in patch["layout"].items():
        layout[k] = patched_value(layout.get(k), p)
    return {"data": data, "layout": layout}

"""What changed between two versions of a list of HTML snippets (the overview's tiles): the splices a browser
holding the old ones needs.

A tile changes in a few places a second: its price, the change pill, the last point of its sparkline (in the
area and in the line). A patch names, per snippet that changed, the character ranges of the old text to replace
and their new text, found with :mod:`difflib` on tokens (words, numbers, the sparkline's points), so a moved
point costs its own few characters, not the tile. ``None`` means "send everything": the snippets differ in
number, or most of them changed. Pure; :func:`apply_cells_patch` is what the browser does, in Python, so the
two can be checked against each other.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from itertools import accumulate

Splice = tuple[int, int, str]  # replace old[start:end] with the text

# a run of name/number characters with the spaces before it (a sparkline point " 12,-97012.3" is one), spaces,
# or one other character
_TOKEN = re.compile(r"\s*[\w.,#%+-]+|\s+|.", re.S)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def text_patch(old: str, new: str) -> list[Splice]:
    """The splices that turn ``old`` into ``new``, as offsets into ``old``, in order ([] when equal)."""
    if old == new:
        return []
    a, b = tokens(old), tokens(new)
    starts = [0, *accumulate(len(t) for t in a)]
    return [(starts[i1], starts[i2], "".join(b[j1:j2])) for i1, i2, j1, j2 in _changed(a, b)]


def _changed(a: list[str], b: list[str]) -> list[tuple[int, int, int, int]]:
    """The token ranges ``a[i1:i2]`` that become ``b[j1:j2]``.

    Between the common start and end, the same number of tokens with few of them changed (numbers moved in the
    same markup: the usual update) is compared place by place, in linear time; otherwise (points left the front
    and came at the end of a sparkline) :mod:`difflib` finds the runs that stayed.
    """
    lo = 0
    while lo < min(len(a), len(b)) and a[lo] == b[lo]:
        lo += 1
    hi = 0
    while hi < min(len(a), len(b)) - lo and a[-1 - hi] == b[-1 - hi]:
        hi += 1
    ma, mb = a[lo : len(a) - hi], b[lo : len(b) - hi]
    if len(ma) == len(mb):
        runs = _runs([i for i, (x, y) in enumerate(zip(ma, mb, strict=True)) if x != y])
        if sum(j - i for i, j in runs) * 4 <= len(ma) or len(ma) < 8:
            return [(lo + i, lo + j, lo + i, lo + j) for i, j in runs]
    ops = difflib.SequenceMatcher(None, ma, mb, autojunk=False).get_opcodes()
    return [(lo + i1, lo + i2, lo + j1, lo + j2) for op, i1, i2, j1, j2 in ops if op != "equal"]


def _runs(positions: list[int]) -> list[tuple[int, int]]:
    """Consecutive positions as ``[start, end)`` runs."""
    out: list[tuple[int, int]] = []
    for i in positions:
        if out and out[-1][1] == i:
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out


def apply_text_patch(old: str, splices: Sequence[Splice]) -> str:
    """:func:`text_patch` applied (the component's JavaScript does the same: last splice first)."""
    text = old
    for start, end, insert in reversed(splices):
        text = text[:start] + insert + text[end:]
    return text


def cells_patch(old: Sequence[str], new: Sequence[str]) -> dict[str, list[Splice]] | None:
    """Per changed snippet (by index), its splices (or one splice of all of it, when that is shorter: a sparkline
    whose window moved); None when the snippets differ in number."""
    if len(old) != len(new):
        return None
    out: dict[str, list[Splice]] = {}
    for i, (a, b) in enumerate(zip(old, new, strict=True)):
        if a != b:
            splices = text_patch(a, b)
            out[str(i)] = splices if sum(len(s[2]) + 16 for s in splices) < len(b) else [(0, len(a), b)]
    return out


def apply_cells_patch(old: Sequence[str], patch: dict[str, list[Splice]]) -> list[str]:
    """:func:`cells_patch` applied; ``old`` is left as it was."""
    return [apply_text_patch(text, patch[str(i)]) if str(i) in patch else text for i, text in enumerate(old)]

"""What a file format declares (:class:`Format`) and what format detection sees (:class:`Sniff`).

Each format module builds one ``Format``: its name, a one-line description
(the ``--format`` help and the README table), how to recognise it from the
first bytes of a file, and its reader. The registry in ``__init__`` lists them;
nothing else names a format.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from backend.sources.formats.csv_blocks import is_number, split
from backend.sources.formats.emitter import Emitter, TimedBatch

Reader = Callable[[IO[bytes], Emitter, str | None], Iterator[TimedBatch]]
"""(uncompressed stream, emitter, default symbol) → batches with their replay clock."""


class Sniff:
    """The first bytes of a file as detection reads them: text, and for CSV a header and a first data row."""

    def __init__(self, path: Path, head: bytes, known_headers: frozenset[str]) -> None:
        self.name = path.name.lower()
        self.text = head.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace")
        self.stripped = self.text.lstrip()
        self.known_headers = known_headers

    @functools.cached_property
    def _csv(self) -> tuple[set[str] | None, list[str]]:
        lines = [ln for ln in self.stripped.splitlines() if ln.strip()]
        first = split(lines[0].strip())
        if is_number(first[0]):
            return None, first
        names = {n.strip().strip('"').lower() for n in first}  # a header row names the columns
        return names, split(lines[1].strip()) if len(lines) > 1 else first

    @property
    def header(self) -> set[str] | None:
        """Lower-case column names of a CSV header row; None when the first row is data."""
        return self._csv[0]

    @property
    def row(self) -> list[str]:
        """The fields of the first data row (the header row when there is nothing else)."""
        return self._csv[1]

    def names_any(self, names: frozenset[str]) -> bool:
        """The header names one of ``names``."""
        return bool(self.header and self.header & names)

    @property
    def header_known(self) -> bool:
        """The header names a column some format recognises: then the header alone decides."""
        return self.names_any(self.known_headers)


@dataclass(frozen=True)
class Format:
    """One trade file format, as the registry and the docs see it."""

    name: str
    description: str  # one line of Markdown: the README table and the --format help
    detect: Callable[[Sniff], bool]  # recognises the format from a sniffed prefix
    read: Reader
    header: frozenset[str] = frozenset()  # CSV column names that identify the format in a header row
    needs_symbol: bool = False  # rows do not name the symbol: the file name or --symbol must

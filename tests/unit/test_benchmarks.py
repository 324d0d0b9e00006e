"""Every benchmark script still runs: it imports what it needs from the code it measures.

A refactor once moved a name a benchmark imported, and ``benchmarks/soak.py`` failed at its first line;
nothing in the suite runs the benchmarks, so this test loads each one (its ``main`` is behind
``__name__ == "__main__"``) and checks it has a ``main`` to call.
"""

from __future__ import annotations

import importlib

import pytest

from tests.conftest import ROOT

BENCHMARKS = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if p.stem != "__init__")


def test_the_benchmarks_are_the_known_ones() -> None:
    assert BENCHMARKS == ["aggregate", "alerts", "dashboard", "durable", "fanout", "flink", "soak"]


@pytest.mark.parametrize("name", BENCHMARKS)
def test_a_benchmark_loads_and_has_a_main(name: str) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(module.main)

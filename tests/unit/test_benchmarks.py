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
    assert BENCHMARKS == ["aggregate", "alerts", "dashboard", "dispatch", "durable", "fanout", "flink", "soak"]


@pytest.mark.parametrize("name", BENCHMARKS)
def test_a_benchmark_loads_and_has_a_main(name: str) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(module.main)


def test_the_dispatch_benchmark_writes_every_message_to_every_client_directly() -> None:
    """It measures the direct-write path only while that path takes every message (its ASGI send raises)."""
    import asyncio

    from benchmarks.dispatch import measure

    per_subscriber_us, writes = asyncio.run(measure(30))
    assert writes == 30 * 200 * 7 and per_subscriber_us > 0

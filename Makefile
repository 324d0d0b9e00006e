# Two commands for a newcomer: `make run` and `make test` (without make: `python dev.py run`, `python dev.py test`).
# dev.py creates .venv and installs the requirements when they changed; these targets only call it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint format setup demo bench bench-dashboard mutate clean flink-venv test-flink bench-flink

# make run SOURCE=exchange:binance SYMBOLS=BTCUSDT,ETHUSDT watches a live exchange (CANDLES_SOURCE, CANDLES_SYMBOLS)
run:
	$(if $(SOURCE),CANDLES_SOURCE=$(SOURCE) )$(if $(SYMBOLS),CANDLES_SYMBOLS=$(SYMBOLS) )$(PYTHON) dev.py run

test:
	$(PYTHON) dev.py test $(PYTEST_ARGS)

# screenshots of every page (both themes) and a GIF + MP4 of live candles, into demo/ (DEMO_ARGS: see --help)
demo:
	$(PYTHON) dev.py demo $(DEMO_ARGS)

lint:
	$(PYTHON) dev.py lint

format:
	$(PYTHON) dev.py format

setup:
	$(PYTHON) dev.py setup

bench: setup
	$(PY) benchmarks/aggregate.py

bench-dashboard: setup
	$(PY) benchmarks/dashboard.py

# Mutation testing (not part of `make test`): the score per module group and the surviving mutants.
# `make mutate GROUPS=aggregate` runs one group; MUTATE_JOBS (default 2) mutants run at once.
mutate: setup
	$(PY) tools/mutate.py $(GROUPS)

# The Flink job's own venv (PyFlink pins older pandas, numpy and pyarrow than requirements.txt); needs Java 11+.
# Rebuilt when requirements-flink.txt changes. test-flink runs the flink-marked tests in it (the relay they
# start runs in .venv: `make setup` first).
FLINK_VENV := .venv-flink
FLINK_PY := $(FLINK_VENV)/bin/python

flink-venv: $(FLINK_VENV)/.installed

$(FLINK_VENV)/.installed: requirements-flink.txt
	$(PYTHON) -m venv $(FLINK_VENV)
	$(FLINK_PY) -m pip install -q --no-compile -r requirements-flink.txt  # compiled on import: only what runs
	touch $@

test-flink: flink-venv
	$(FLINK_PY) -m pytest -m flink tests/flink -rs $(PYTEST_ARGS)

# trades/s of the Flink job at parallelism 1 and 2 beside the in-process aggregator (BENCH_ARGS: see --help)
bench-flink: setup flink-venv
	$(PY) benchmarks/flink.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(FLINK_VENV) .pytest_cache .ruff_cache mutants

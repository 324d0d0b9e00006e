# Two commands for a newcomer: `make run` and `make test` (without make: `python dev.py run`, `python dev.py test`).
# dev.py creates .venv and installs the requirements when they changed; these targets only call it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint format setup demo bench bench-dashboard mutate clean

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

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache mutants

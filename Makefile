# K2: the two commands for a fresh machine are `make run` and `make test` (see README).
# Every target installs what is missing first; all are idempotent and cached:
#   Python packages: .venv (uv cache), JVM artifacts: ~/.m2 + $K2_CACHE_DIR.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.k2-installed

.PHONY: help setup run stop test test-faults test-clock test-unit fuzz bench lint lock

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/' | expand -t 14

setup: $(STAMP)  ## install everything (system packages, virtualenv, JVM artifacts)
	@$(BIN)/k2 setup

# requirements.txt is the whole frozen lock (make lock), installed by uv (pip without it).
$(STAMP): requirements.txt pyproject.toml scripts/system-deps.sh scripts/python-env.sh
	@scripts/system-deps.sh
	@PYTHON=$(PYTHON) VENV_DIR=$(VENV) scripts/python-env.sh
	@touch $(STAMP)

run: setup  ## run the whole platform (OFFLINE=1: workers read the local exchange simulator)
	@$(BIN)/k2 up $(if $(OFFLINE),--simulator)

stop:  ## stop everything `make run` started (data is kept)
	@$(BIN)/k2 down

test: setup  ## run every test tier against a real local stack (starts and stops it)
	@scripts/run-tests.sh

test-faults: setup  ## only the fault matrix (kill -9 of every component while trades flow; ~4 min; also in make test)
	@$(BIN)/k2 stack up postgres kafka registry spark
	@$(BIN)/python -m pytest -m faults tests

test-clock: setup  ## the calendar-dependent tests as if it were 00:05, 01:30 and 23:55 UTC (FAKE_NOW=01:30 make test: the whole suite)
	@$(BIN)/k2 stack up postgres kafka registry spark
	@for t in 00:05 01:30 23:55; do echo "[k2] test-clock: --fake-now $$t"; \
	  $(BIN)/python -m pytest -m clock --fake-now $$t tests || exit 1; done

test-unit: setup  ## only the unit tier (no services needed)
	@$(BIN)/python -m pytest -m "not integration and not dags and not e2e and not faults" tests

fuzz: setup  ## long fuzzing campaign of the worker parsers and Silver's decode: FUZZ_SCALE (default 20) x the unit tier's examples, new seed each run (FUZZ_SEED=n repeats one); prints cases/s and any failure, minimized
	@FUZZ_SCALE=$(or $(FUZZ_SCALE),20) FUZZ_SEED=$(FUZZ_SEED) $(BIN)/python -m pytest -q -s -p no:cacheprovider \
	  tests/unit/workers/test_fuzz_frames.py tests/unit/workers/test_fuzz_backfill.py tests/unit/workers/test_frame_handler.py \
	  tests/unit/spark/test_silver_fuzz.py

bench: setup  ## measure every SPEC §8 figure (BENCH_ARGS="--only latency" for a subset)
	@scripts/run-bench.sh $(BENCH_ARGS)

lint: setup  ## ruff
	@$(BIN)/ruff check .

lock:  ## re-resolve requirements.in into requirements.txt in a scratch venv
	@rm -rf /tmp/k2-lock-venv && $(PYTHON) -m venv /tmp/k2-lock-venv
	@/tmp/k2-lock-venv/bin/pip install --quiet -r requirements.in
	@{ head -2 requirements.txt; /tmp/k2-lock-venv/bin/pip freeze; } > requirements.txt.new
	@mv requirements.txt.new requirements.txt && echo "requirements.txt updated"

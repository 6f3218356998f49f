#!/usr/bin/env bash
# `make test`: the unit tier first (no services), then every tier that needs the real
# local stack. Starts the stack if it is not already fully up, and stops it afterwards
# only in that case, so a developer's running stack is left alone.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export PYTHONUNBUFFERED=1

echo "[k2] test: unit tier"
$BIN/python -m pytest -m "not integration and not dags and not e2e and not faults" tests
unit_rc=$?

started=0
if ! $BIN/k2 stack status >/dev/null 2>&1; then
  echo "[k2] test: starting the local stack"
  if ! $BIN/k2 stack up; then
    echo "[k2] test: the stack did not start; see the error above" >&2
    $BIN/k2 stack down >/dev/null 2>&1
    exit 1
  fi
  started=1
fi
stop_stack() { if [ "$started" = 1 ]; then echo "[k2] test: stopping the stack"; $BIN/k2 stack down; fi; }
trap stop_stack EXIT

echo "[k2] test: integration, dags and end-to-end tiers against the local stack"
$BIN/python -m pytest -m "integration or dags or e2e or faults" --durations=15 tests
stack_rc=$?

if [ $unit_rc -ne 0 ] || [ $stack_rc -ne 0 ]; then
  echo "[k2] test: FAILED (unit tier rc=$unit_rc, stack tiers rc=$stack_rc)" >&2
  exit 1
fi
echo "[k2] test: all tiers passed"

#!/usr/bin/env bash
# `make test`: the unit tier first (no services), then every tier that needs the real
# local stack. Starts the stack if it is not already fully up, and stops it afterwards
# only in that case, so a developer's running stack is left alone. Ends with the wall
# time of each phase and the time spent in each tier.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export PYTHONUNBUFFERED=1
# FAKE_NOW=HH:MM (or an ISO instant): the calendar-dependent tests run as if it were then.
fake_now=()
[ -n "${FAKE_NOW:-}" ] && fake_now=(--fake-now "$FAKE_NOW") && echo "[k2] test: calendar tests at --fake-now $FAKE_NOW"
times=$(mktemp -d)
phases=()
t0=$(date +%s)

phase() {  # phase NAME COMMAND...: run it, remember its wall time
  local name=$1 began=$SECONDS rc
  shift
  "$@"
  rc=$?
  phases+=("$(printf '%-28s %6d s' "$name" $((SECONDS - began)))")
  return $rc
}

summary() {
  echo
  echo "[k2] test: wall time per phase"
  printf '  %s\n' "${phases[@]}"
  printf '  %-28s %6d s\n' "total" $(($(date +%s) - t0))
  $BIN/python - "$times" <<'PY'
import json, pathlib, sys
rows = {}
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    for tier, row in json.loads(f.read_text()).items():
        rows.setdefault(tier, [0.0, 0])
        rows[tier][0] += row["seconds"]
        rows[tier][1] += row["tests"]
if rows:
    print("[k2] test: time per tier (setup + test + teardown, summed over tests)")
    for tier, (seconds, tests) in rows.items():
        print(f"  {tier:<28} {seconds:6.0f} s  {tests:4d} tests")
PY
  rm -rf "$times"
}

started=0
stop_stack() {
  if [ "$started" = 1 ]; then echo "[k2] test: stopping the stack"; phase "stack stop" $BIN/k2 stack down; fi
  summary
}
trap stop_stack EXIT

# The stack starts while the unit tier runs: its start is mostly waiting on health checks.
if ! $BIN/k2 stack status >/dev/null 2>&1; then
  echo "[k2] test: starting the local stack beside the unit tier (its log follows the unit tier)"
  started=1
  stack_began=$SECONDS
  $BIN/k2 stack up >"$times/stack-up.log" 2>&1 &
  stack_pid=$!
fi

echo "[k2] test: unit tier"
phase "unit tier" $BIN/python -m pytest -m "not integration and not dags and not e2e and not faults" \
  --tier-times "$times/unit.json" "${fake_now[@]}" tests
unit_rc=$?

if [ "$started" = 1 ]; then
  wait "$stack_pid"
  up_rc=$?
  cat "$times/stack-up.log"
  phases+=("$(printf '%-28s %6d s' "stack start (beside unit)" $((SECONDS - stack_began)))")
  if [ $up_rc -ne 0 ]; then
    echo "[k2] test: the stack did not start; see the error above" >&2
    exit 1
  fi
fi

echo "[k2] test: integration, dags and end-to-end tiers against the local stack"
phase "stack tiers" $BIN/python -m pytest -m "integration or dags or e2e or faults" --durations=15 \
  --tier-times "$times/stack.json" "${fake_now[@]}" tests
stack_rc=$?

if [ $unit_rc -ne 0 ] || [ $stack_rc -ne 0 ]; then
  echo "[k2] test: FAILED (unit tier rc=$unit_rc, stack tiers rc=$stack_rc)" >&2
  exit 1
fi
echo "[k2] test: all tiers passed"

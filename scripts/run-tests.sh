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

cpu_ticks() {  # "busy total" jiffies of the whole machine since boot (/proc/stat)
  local _ user nice system idle iowait irq softirq steal
  read -r _ user nice system idle iowait irq softirq steal _ </proc/stat
  echo "$((user + nice + system + irq + softirq + steal)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

# A phase's line: its wall time and how busy the machine's CPUs were meanwhile. Near 100%,
# the phase is CPU-bound (only less work makes it faster); well below, it mostly waits.
phase_line() {  # phase_line NAME SECONDS "BUSY TOTAL" (cpu_ticks at its start)
  local busy0 total0 busy1 total1
  read -r busy0 total0 <<<"$3"
  read -r busy1 total1 <<<"$(cpu_ticks)"
  phases+=("$(printf '%-28s %6d s   CPU busy %3d%%' "$1" "$2" $((100 * (busy1 - busy0) / (total1 - total0 + 1))))")
}

phase() {  # phase NAME COMMAND...: run it, remember its wall time
  local name=$1 began=$SECONDS ticks rc
  ticks=$(cpu_ticks)
  shift
  "$@"
  rc=$?
  phase_line "$name" $((SECONDS - began)) "$ticks"
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

group() {  # group NAME MARKER-EXPRESSION PYTEST-ARGS...: one pytest process of the stack tiers
  local name=$1 expr=$2
  shift 2
  $BIN/python -m pytest -m "$expr" --durations=8 -p no:cacheprovider --basetemp "$times/tmp-$name" \
    --tier-times "$times/$name.json" "${fake_now[@]}" "$@"
}

# Beside the unit tier (which needs no service), one lane starts the stack (unless it
# is up) and then runs the stack restart test: it restarts every service, so it runs
# before any other stack-tier test, and both mostly wait on start-ups and health checks.
stack_lane() {
  if [ "$started" = 1 ] && ! $BIN/k2 stack up; then
    echo "[k2] test: the stack did not start; see the error above" >&2
    return 10
  fi
  echo "[k2] test: the stack restart test (before the other stack tiers: it restarts every service)"
  group lifecycle "restarts_stack" tests
}
$BIN/k2 stack status >/dev/null 2>&1 || started=1
[ "$started" = 1 ] && echo "[k2] test: starting the local stack beside the unit tier (its log follows the unit tier)"
lane_began=$SECONDS
lane_ticks=$(cpu_ticks)
stack_lane >"$times/stack-lane.log" 2>&1 &
lane_pid=$!

# Two processes (pytest-xdist): the unit tier is CPU work, and outlasts the lane beside it.
echo "[k2] test: unit tier (two processes)"
phase "unit tier" $BIN/python -m pytest -n 2 -m "not integration and not dags and not e2e and not faults" \
  --tier-times "$times/unit.json" "${fake_now[@]}" tests
unit_rc=$?

wait "$lane_pid"
lifecycle_rc=$?
cat "$times/stack-lane.log"
phase_line "stack start + restart test" $((SECONDS - lane_began)) "$lane_ticks"
[ $lifecycle_rc -eq 10 ] && exit 1
# A failed restart test may leave a service down: the other tiers need them all.
$BIN/k2 stack up >/dev/null 2>&1 || { echo "[k2] test: the stack is not up after the restart test" >&2; exit 1; }

# The stack tiers in four steps. Most of their time is waiting (Spark start-ups, triggers,
# Airflow), so independent tests run as four pytest processes at once; what disturbs
# the others runs alone: the stack restart (beside the unit tier, above), then the fault
# matrix (kills Kafka and the registry). Every stack-tier test is in exactly one step: the last group is
# "the rest of tests/integration". The `airflow` group holds the tests whose objects are
# the platform's own namespace, topics and streams, in this order (bootstrap creates
# them, the babysitter's streams commit to them, the health page shows their state and
# dead letters): one process, so they never race.
# The cleanup-migrations test also seeds and removes objects there, but only legacy ones
# next to the v3 objects: it runs last in the `isolated` group (whose other tests work
# on namespaces and topics of their own), long after bootstrap has created the v3 ones.
STACK_TIERS="(integration or dags) and not e2e and not faults and not restarts_stack"
AIRFLOW_GROUP=(tests/integration/airflow/test_bootstrap_dag.py tests/integration/airflow/test_streaming_babysitter_dag.py
               tests/integration/airflow/test_health_page.py)
ISOLATED_GROUP=(tests/integration/spark/test_maintenance.py tests/integration/query tests/dags
                tests/integration/airflow/test_cleanup_migrations_dag.py)
# The completeness module lives with the e2e tier (it runs its own copy of that tier's
# pipeline) but is marked integration: it runs here, beside the other groups. The
# sharded full-market test (workers and Kafka only, ~150 s) runs in this group too: the
# services group, which would otherwise hold it, was the last to finish.
SPARK_GROUP=(tests/integration/spark/test_pipeline.py tests/e2e/test_platform_completeness.py
             tests/integration/workers/test_fullmarket_shards.py)
ignore=()
for path in "${AIRFLOW_GROUP[@]}" "${ISOLATED_GROUP[@]}" "${SPARK_GROUP[@]}"; do ignore+=(--ignore "$path"); done

echo "[k2] test: e2e tier and fault matrix (alone: the fault matrix kills Kafka and the registry)"
phase "e2e + fault matrix" group e2e "e2e or faults" tests
e2e_rc=$?

GROUPS_RUN=(airflow isolated spark services)
echo "[k2] test: integration and dags tiers, ${#GROUPS_RUN[@]} groups at once (${GROUPS_RUN[*]}); output follows each"
began=$SECONDS
ticks=$(cpu_ticks)
group airflow "$STACK_TIERS" "${AIRFLOW_GROUP[@]}" >"$times/airflow.out" 2>&1 &
pids=($!)
group isolated "$STACK_TIERS" "${ISOLATED_GROUP[@]}" >"$times/isolated.out" 2>&1 &
pids+=($!)
group spark "$STACK_TIERS" "${SPARK_GROUP[@]}" >"$times/spark.out" 2>&1 &
pids+=($!)
group services "$STACK_TIERS" "${ignore[@]}" tests/integration >"$times/services.out" 2>&1 &
pids+=($!)
groups_rc=0
for pid in "${pids[@]}"; do wait "$pid" || groups_rc=1; done
for name in "${GROUPS_RUN[@]}"; do
  echo "----- [k2] test: group $name"
  cat "$times/$name.out"
done
phase_line "${#GROUPS_RUN[@]} groups at once" $((SECONDS - began)) "$ticks"

stack_rc=$((e2e_rc || groups_rc || lifecycle_rc))
if [ $unit_rc -ne 0 ] || [ $stack_rc -ne 0 ]; then
  echo "[k2] test: FAILED (unit tier rc=$unit_rc, stack tiers rc=$stack_rc)" >&2
  exit 1
fi
echo "[k2] test: all tiers passed"

#!/usr/bin/env bash
# `make bench`: every benchmark that exists, each printing its figures and method.
# Results are also written as JSON under $K2_HOME/bench/ (default .k2/bench/).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
rc=0
started=0
if ! $BIN/k2 stack status >/dev/null 2>&1; then
  $BIN/k2 stack up postgres kafka registry spark || exit 1
  started=1
fi
trap '[ "$started" = 1 ] && $BIN/k2 stack down' EXIT
for module in workers.bench spark_jobs.bench; do
  file="${module//.//}.py"
  if [ -f "$file" ]; then
    echo "[k2] bench: $module"
    $BIN/python -m "$module" || rc=1
  fi
done
exit $rc

#!/usr/bin/env bash
# `make bench`: every SPEC §8 figure in one run (`k2 bench`), printed with its method and
# written to $K2_HOME/bench/<time>.json and .md. Starts the stack if it is not up (and
# stops it again afterwards). Extra arguments go to `k2 bench` (see `k2 bench --help`).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
started=0
if ! $BIN/k2 stack status >/dev/null 2>&1; then
  $BIN/k2 stack up postgres kafka registry spark || exit 1
  started=1
fi
trap '[ "$started" = 1 ] && $BIN/k2 stack down' EXIT
$BIN/k2 bench "$@"

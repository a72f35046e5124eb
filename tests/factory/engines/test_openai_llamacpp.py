"""The openai backend against a real OpenAI-compatible server: llama.cpp's (llama-cpp-python[server])
serving the bundled SmolLM2 GGUF on loopback."""

import subprocess
import sys

import pytest
import requests

from factory.config import load_pipeline
from factory.engines import ModelSpec, SamplingParams, load_engine
from factory.models import _smollm2_gguf
from factory.runner import PipelineRunner
from factory.store import Store
from tests.helpers import PROBE_TIMEOUT_S, free_port, prompts, wait_until_ready, write_pipeline

pytestmark = pytest.mark.slow




@pytest.fixture(scope="module")
def llama_server():
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(_smollm2_gguf()), "--host", "127.0.0.1",
               "--port", str(port), "--model_alias", "smol", "--logits_all", "true", "--n_ctx", "2048",
               "--n_threads", "2"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until_ready(f"llama.cpp's server at {url} to answer GET /models",
                         lambda: requests.get(f"{url}/models", timeout=PROBE_TIMEOUT_S).ok, process=server)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_generate_and_score_on_a_real_server(llama_server):
    engine = load_engine(ModelSpec(name="smol", backend="openai", base_url=llama_server,
                                   tokenizer="smollm2-135m-instruct"))
    conversation = [{"role": "user", "content": "What is the capital of France?"}]
    (generation,) = engine.generate([conversation], SamplingParams(n=2, max_new_tokens=16, seed=0))
    assert generation.error is None and len(generation.completions) == 2
    assert all(c.text for c in generation.completions) and generation.prompt_tokens > 0
    (scores,) = engine.logprobs([conversation], ["The capital of France is Paris."])
    assert 5 <= len(scores) <= 10 and all(value <= 0 for value in scores)
    (probs,) = engine.option_probs([conversation], ["Paris", "Banana"])
    assert probs[0] > probs[1] > 0


def test_same_kind_of_rows_as_transformers(llama_server, tmp_path):
    def run(model, folder):
        raw = {"name": "kinds", "executor": "local", "models": {"m": model}, "stages": [{
            "stage": "generate", "input": {"seed": "prompts.jsonl"}, "model": "m",
            "config": {"n": 2, "max_new_tokens": 8, "seed": 0}}]}
        store = Store(folder / "store")
        PipelineRunner(load_pipeline(write_pipeline(folder, raw, prompts(2))), store).run()
        return store

    on_server = run({"name": "smol", "backend": "openai", "base_url": llama_server}, tmp_path / "a")
    local = run({"name": "smollm2-135m-instruct"}, tmp_path / "b")
    assert on_server.columns("responses") == local.columns("responses")
    query = "SELECT parent_id, sample_index, error IS NULL AS ok, response <> '' AS said FROM responses ORDER BY 1, 2"
    assert on_server.sql(query).equals(local.sql(query))


def test_cdr_scoring_agrees_with_transformers(llama_server):
    """One (conversation, response) pair scored through the transformers engine and through llama.cpp's
    server: the same tokens of the same text are scored (counts equal, values close; the server runs the
    Q4_1 weights the bundled model was dequantised from), with the chat template and with the plain layout."""
    from factory.engines.transformers_engine import TransformersEngine

    conversation = [{"role": "system", "content": "be helpful"}, {"role": "user", "content": "What is the capital of France?"}]
    response = "The capital of France is Paris. It is known for the Eiffel Tower."
    local = load_engine(ModelSpec(name="smollm2-135m-instruct", device="cpu", dtype="float32"))
    templated = load_engine(ModelSpec(name="smol", backend="openai", base_url=llama_server, tokenizer="smollm2-135m-instruct"))
    (here,), (there,) = local.logprobs([conversation], [response]), templated.logprobs([conversation], [response])
    assert len(here) == len(there) > 10
    assert sum(here) == pytest.approx(sum(there), abs=0.05 * len(here))
    # Plain layout (no chat template on either side): both score " " + response after "Assistant:", so the
    # same number of tokens. Values are not compared: llama-cpp-python's echoed prompt log-probs are wrong
    # (about -14 per token) for a prompt that does not start with the BOS token, which the plain layout of
    # SmolLM2 (add_bos_token false) never does; a direct llama.cpp eval of the same ids agrees with transformers.
    tokenizer = local.tokenizer.__class__.from_pretrained(local.path)
    tokenizer.chat_template = None
    plain_local = TransformersEngine(local.spec, model=local.model, tokenizer=tokenizer)
    plain_server = load_engine(ModelSpec(name="smol", backend="openai", base_url=llama_server))
    (here,), (there,) = plain_local.logprobs([conversation], [response]), plain_server.logprobs([conversation], [response])
    assert len(here) == len(there) == len(local.tokenizer(" " + response, add_special_tokens=False).input_ids)

"""vLLM backend: needs CUDA and the `vllm` extra; skipped (with the reason) elsewhere."""

import pytest

from factory.engines import ModelSpec, SamplingParams, load_engine

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def vllm_engine(tiny_model_dir):
    pytest.importorskip("vllm", reason="the vllm extra is not installed (pip install -e '.[vllm]')")
    return load_engine(ModelSpec(name=str(tiny_model_dir), backend="vllm", dtype="float32",
                                 gpu_memory_utilization=0.3, max_model_len=256))


def test_generate_n_samples(vllm_engine):
    (generation,) = vllm_engine.generate([[{"role": "user", "content": "hello"}]],
                                         SamplingParams(n=3, max_new_tokens=4, seed=0))
    assert len(generation.completions) == 3 and generation.prompt_tokens > 0


def test_logprobs_match_transformers(vllm_engine, tiny_engine):
    conversation = [{"role": "user", "content": "the sky"}]
    ours = vllm_engine.logprobs([conversation], ["the quick brown fox"])[0]
    reference = tiny_engine.logprobs([conversation], ["the quick brown fox"])[0]
    assert ours == pytest.approx(reference, abs=1e-2)

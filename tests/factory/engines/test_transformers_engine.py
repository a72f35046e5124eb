import math

import pytest
import torch

from factory.engines import ModelSpec, SamplingParams, load_engine
from factory.engines.transformers_engine import PromptTooLongError, pick_dtype, plain_prompt

CONVERSATIONS = [
    [{"role": "user", "content": "hello world"}],
    [{"role": "system", "content": "be brief"}, {"role": "user", "content": "explain why the sky is blue in two sentences"}],
]


def test_generate_n_samples_with_token_counts(tiny_engine):
    generations = tiny_engine.generate(CONVERSATIONS, SamplingParams(n=3, max_new_tokens=6, seed=1))
    assert len(generations) == 2
    for conversation, generation in zip(CONVERSATIONS, generations, strict=True):
        assert generation.prompt_tokens == len(tiny_engine.prompt_ids(conversation))
        assert len(generation.completions) == 3
        for completion in generation.completions:
            assert 1 <= completion.completion_tokens <= 6
            assert completion.finish_reason in ("stop", "length")
            if completion.finish_reason == "length":
                assert completion.completion_tokens == 6


def test_seed_reproduces_and_changes_samples(tiny_engine):
    params = SamplingParams(n=2, max_new_tokens=8, temperature=1.0, seed=7)
    first = tiny_engine.generate(CONVERSATIONS, params)
    again = tiny_engine.generate(CONVERSATIONS, params)
    other = tiny_engine.generate(CONVERSATIONS, params.model_copy(update={"seed": 8}))
    texts = lambda gens: [c.text for g in gens for c in g.completions]  # noqa: E731
    assert texts(first) == texts(again)
    assert texts(first) != texts(other)


def test_left_padding_does_not_change_greedy_output(tiny_engine):
    greedy = SamplingParams(max_new_tokens=6, temperature=0)
    batched = tiny_engine.generate(CONVERSATIONS, greedy)
    alone = [tiny_engine.generate([c], greedy)[0] for c in CONVERSATIONS]
    assert [g.completions[0].text for g in batched] == [g.completions[0].text for g in alone]


def test_logprobs_match_a_full_forward_pass(tiny_engine):
    responses = ["the quick brown fox", "yes"]
    scores = tiny_engine.logprobs(CONVERSATIONS, responses)
    for conversation, response, score in zip(CONVERSATIONS, responses, scores, strict=True):
        prompt = tiny_engine.prompt_ids(conversation)
        answer = tiny_engine.tokenizer(response, add_special_tokens=False).input_ids
        ids = torch.tensor([prompt + answer])
        with torch.no_grad():
            logits = tiny_engine.model(input_ids=ids).logits[0].float()
        expected = torch.log_softmax(logits, -1)[len(prompt) - 1 : -1].gather(1, torch.tensor(answer)[:, None])
        assert len(score) == len(answer)
        assert score == pytest.approx(expected.squeeze(1).tolist(), abs=1e-4)


def test_option_probs_are_exact_sequence_probabilities(tiny_engine):
    options = ["yes", "no", "maybe so"]
    (probs,) = tiny_engine.option_probs(CONVERSATIONS[:1], options)
    direct = [math.exp(sum(s)) for s in tiny_engine.logprobs(CONVERSATIONS[:1] * 3, options)]
    assert probs == pytest.approx(direct)
    assert all(0 < p < 1 for p in probs)


def test_prompt_longer_than_context_raises(tiny_engine):
    long = [{"role": "user", "content": "the quick brown fox " * 200}]
    with pytest.raises(PromptTooLongError, match="exceeds the model's context"):
        tiny_engine.generate([long], SamplingParams(max_new_tokens=4))
    with pytest.raises(PromptTooLongError):
        tiny_engine.logprobs([long], ["yes"])


def test_mismatched_lengths_raise(tiny_engine):
    with pytest.raises(ValueError, match="2 conversations but 1 responses"):
        tiny_engine.logprobs(CONVERSATIONS, ["x"])


def test_plain_prompt_for_models_without_chat_template():
    assert plain_prompt(CONVERSATIONS[1]).endswith("User: explain why the sky is blue in two sentences\n\nAssistant:")


def test_dtype_choice():
    assert pick_dtype("auto", torch.device("cpu")) == torch.bfloat16
    assert pick_dtype("float32", torch.device("cpu")) == torch.float32


def test_unknown_model_path_fails_clearly(tmp_path):
    with pytest.raises(OSError):
        load_engine(ModelSpec(name=str(tmp_path / "no-such-model")))


@pytest.mark.gpu
def test_generate_on_cuda(tiny_model_dir):
    engine = load_engine(ModelSpec(name=str(tiny_model_dir), device="cuda"))
    assert engine.model.device.type == "cuda"
    (generation,) = engine.generate(CONVERSATIONS[:1], SamplingParams(n=2, max_new_tokens=4, seed=0))
    assert len(generation.completions) == 2


def test_shared_prefix_scoring_equals_scoring_each_alone(tiny_engine):
    conversation = CONVERSATIONS[1]
    responses = ["the quick brown fox", "yes", "write a short poem about the sea", "no no no", ""]
    together = tiny_engine.logprobs([conversation] * len(responses), responses)
    alone = [tiny_engine.logprobs([conversation], [response])[0] for response in responses]
    for shared, single in zip(together, alone, strict=True):
        assert len(shared) == len(single)
        assert shared == pytest.approx(single, abs=1e-4)
    mixed = tiny_engine.logprobs([conversation, CONVERSATIONS[0], conversation], ["yes", "yes", "no no no"])
    assert mixed[0] == pytest.approx(alone[1], abs=1e-4) and mixed[2] == pytest.approx(alone[3], abs=1e-4)


# ---- scoring precision and the scored text (issue 13, item 4 b/e) ------------------------------------


def independent_logprobs(folder, text_prompt: str, response: str, templated: bool) -> list[float]:
    """Per-token log-probs of `response` after `text_prompt`, from one plain fp32 forward pass of a freshly
    loaded model. The response's tokens are found by the reference's rule (tokens after the prompt's own)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    joined = text_prompt + ("" if templated else " ") + response
    ids = tokenizer(joined, add_special_tokens=not templated).input_ids
    start = len(tokenizer(text_prompt, add_special_tokens=not templated).input_ids)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    log_probs = torch.log_softmax(logits, dim=-1)
    return [log_probs[t - 1, ids[t]].item() for t in range(start, len(ids))]


def test_scoring_is_fp32_by_default_on_cpu_and_both_paths_agree_with_a_full_pass(tiny_model_dir):
    from transformers import AutoTokenizer

    engine = load_engine(ModelSpec(name=str(tiny_model_dir), device="cpu"))  # dtype auto: bf16 generation
    assert engine.model.dtype == torch.bfloat16 and engine.scorer.dtype == torch.float32
    conversation = CONVERSATIONS[1]
    responses = ["the quick brown fox jumps over the lazy dog", "yes no maybe", "write a short poem about the sea"]
    shared = engine.logprobs([conversation] * 3, responses)  # one prompt, three responses: the shared-prefix path
    lone = engine.logprobs([conversation], responses[:1])  # a lone pair: the plain batched pass
    text = AutoTokenizer.from_pretrained(tiny_model_dir).apply_chat_template(
        conversation, add_generation_prompt=True, tokenize=False)
    for response, score in zip(responses, shared, strict=True):
        expected = independent_logprobs(tiny_model_dir, text, response, templated=True)
        assert len(score) == len(expected)
        assert abs(sum(score) - sum(expected)) < 1e-3
    assert abs(sum(lone[0]) - sum(shared[0])) < 1e-3
    # Opting into bf16 scoring is possible ('same') and is what the docs' error bound is about.
    same = load_engine(ModelSpec(name=str(tiny_model_dir), device="cpu", score_dtype="same"))
    assert same.scorer is same.model and same.scorer.dtype == torch.bfloat16


def test_plain_layout_scores_the_response_after_a_space(tiny_model_dir):
    """A model without a chat template: the response follows 'Assistant:' after one space, as a base model
    writes it (generation strips that space), tokenised together with the prompt."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from factory.engines.transformers_engine import TransformersEngine

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = None
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    engine = TransformersEngine(ModelSpec(name="plain", device="cpu", dtype="float32"), model=model, tokenizer=tokenizer)
    response = "the sky is blue"
    (score,) = engine.logprobs(CONVERSATIONS[:1], [response])
    expected = independent_logprobs(tiny_model_dir, plain_prompt(CONVERSATIONS[0]), response, templated=False)
    assert len(score) == len(expected)
    assert score == pytest.approx(expected, abs=1e-4)

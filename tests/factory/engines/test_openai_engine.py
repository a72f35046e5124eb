"""openai backend against misbehaving servers (fault injection). The success path against a
real llama.cpp server is in test_openai_llamacpp.py."""

import json

import pytest

from factory.engines import ModelSpec, SamplingParams, load_engine
from factory.engines.openai_engine import MissingCapabilityError
from tests.factory.engines.fault_server import FaultServer, chat_reply

HELLO = [[{"role": "user", "content": "hello"}]]


def engine_for(server, **spec):
    return load_engine(ModelSpec(name="served-model", backend="openai", base_url=server.url, **spec))


def test_retries_429_then_succeeds():
    script = lambda number, path, payload: (429, "slow down", 0) if number <= 2 else chat_reply(n=payload["n"])  # noqa: E731
    with FaultServer(script) as server:
        (generation,) = engine_for(server).generate(HELLO, SamplingParams(n=2, max_new_tokens=5))
    assert generation.error is None
    assert [c.text for c in generation.completions] == ["hello there 0", "hello there 1"]
    assert generation.prompt_tokens == 7 and generation.completions[0].completion_tokens == 3
    assert len(server.requests) == 3
    path, payload, _ = server.requests[-1]
    assert path == "/v1/chat/completions" and payload["model"] == "served-model" and payload["max_tokens"] == 5


def test_formatted_text_goes_to_completions_as_it_is():
    # A str prompt is already formatted (a guard's official wrapper): no chat template, no messages.
    text = "[INST] Task: classify [/INST]"
    reply = {"choices": [{"index": 0, "text": " safe", "finish_reason": "stop"}], "usage": {"prompt_tokens": 9}}
    with FaultServer(lambda number, path, payload: (200, json.dumps(reply), 0.0)) as server:
        (generation,) = engine_for(server).generate([text], SamplingParams(max_new_tokens=4))
    assert generation.error is None and [c.text for c in generation.completions] == ["safe"]
    path, payload, _ = server.requests[-1]
    assert path == "/v1/completions" and payload["prompt"] == text and "messages" not in payload


@pytest.mark.parametrize("reply, message", [
    ((500, "boom", 0), "HTTP 500"),
    ((200, "{not json", 0), "malformed JSON"),
    ((200, json.dumps(["a list"]), 0), "unexpected JSON"),
    ((200, chat_reply()[1], 1.0), "timed out"),
])
def test_final_failure_becomes_an_error_not_a_crash(reply, message):
    with FaultServer(lambda *_: reply) as server:
        (generation,) = engine_for(server, max_retries=1, timeout_s=0.3).generate(HELLO, SamplingParams())
    assert generation.completions == [] and message in generation.error
    assert len(server.requests) == 2  # the first try and one retry


def test_client_errors_are_not_retried():
    with FaultServer(lambda *_: (400, '{"error": "bad model"}', 0)) as server:
        (generation,) = engine_for(server).generate(HELLO, SamplingParams())
    assert "HTTP 400" in generation.error and len(server.requests) == 1


def test_missing_choices_are_an_error():
    with FaultServer(lambda *_: (200, json.dumps({"nothing": 1}), 0)) as server:
        (generation,) = engine_for(server, max_retries=0).generate(HELLO, SamplingParams())
    assert generation.error.startswith("KeyError")


def test_api_key_is_sent_but_never_in_errors(monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-secret-123")
    with FaultServer(lambda *_: (500, "nope", 0)) as server:
        (generation,) = engine_for(server, api_key_env="MY_KEY", max_retries=0).generate(HELLO, SamplingParams())
    assert server.requests[0][2]["Authorization"] == "Bearer sk-secret-123"
    assert "sk-secret" not in generation.error


def test_scoring_needs_echoed_logprobs():
    chat_only = lambda *_: (200, json.dumps({"choices": [{"text": "x"}]}), 0)  # noqa: E731
    with FaultServer(chat_only) as server, pytest.raises(MissingCapabilityError, match="echo=true and logprobs"):
        engine_for(server).logprobs(HELLO, ["yes"])


def test_scoring_reads_only_the_response_tokens():
    def echo(number, path, payload):
        text = payload["prompt"]
        prompt_end = text.index("Assistant:") + len("Assistant:")
        assert text[prompt_end:] == " yes"
        tokens = [text[:prompt_end], " ye", "s", "!"]  # " ye" straddles the seam: it is response text
        offsets = [0, prompt_end, prompt_end + 3, len(text)]
        body = {"choices": [{"text": text + "!", "logprobs": {
            "tokens": tokens, "token_logprobs": [None, -1.5, -0.25, -3.0], "text_offset": offsets}}]}
        return 200, json.dumps(body), 0

    with FaultServer(echo) as server:
        engine = engine_for(server)
        assert engine.logprobs(HELLO, ["yes"]) == [[-1.5, -0.25]]
        (probs,) = engine.option_probs(HELLO, ["yes"])
    assert probs == pytest.approx([pytest.approx(2.718281828 ** -1.75)])


def test_openai_spec_needs_a_base_url():
    with pytest.raises(ValueError, match="needs base_url"):
        ModelSpec(name="x", backend="openai")



def test_generate_stage_on_openai_keeps_good_rows_and_errors(tmp_path):
    from factory.config import load_pipeline
    from factory.runner import PipelineRunner
    from factory.store import Store
    from tests.helpers import generate_pipeline, prompts, write_pipeline

    def script(number, path, payload):
        return (500, "down", 0) if "number 1" in payload["messages"][-1]["content"] else chat_reply(n=payload["n"])

    with FaultServer(script) as server:
        raw = generate_pipeline("served-model", n=2)
        raw["models"]["m"] = {"name": "served-model", "backend": "openai", "base_url": server.url, "max_retries": 0}
        store = Store(tmp_path / "store")
        (summary,) = PipelineRunner(load_pipeline(write_pipeline(tmp_path, raw, prompts(3))), store).run()
    assert (summary.rows, summary.error_rows) == (5, 1)
    rows = store.sql("SELECT parent_id, sample_index, response, error FROM responses ORDER BY parent_id, sample_index")
    assert rows.filter(rows["parent_id"] == "p1")["error"][0].startswith("ServerError")
    assert rows.filter(rows["parent_id"] == "p0")["response"].to_list() == ["hello there 0", "hello there 1"]

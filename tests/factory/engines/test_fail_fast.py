"""The openai backend fails fast (issue 16, item 3): a per-call deadline across retries, a liveness
probe for requests with no reply, and a circuit breaker that turns the rest of a stage into error
rows at once when the server is dead or hung. Fault-injection only, no model."""

from __future__ import annotations

import threading
import time

from factory.engines import ModelSpec, SamplingParams, load_engine
from factory.engines.breaker import Breaker, CircuitOpenError
from tests.factory.engines.fault_server import FaultServer, chat_reply, never_answers
from tests.helpers import free_port

HELLO = [{"role": "user", "content": "hello"}]


def engine_for(url: str, **spec):
    return load_engine(ModelSpec(name="served-model", backend="openai", base_url=url, **spec))


def test_hung_server_fails_a_64_row_stage_fast_with_the_defaults_and_retry_errors_redoes_it(tmp_path):
    from factory.config import load_pipeline
    from factory.runner import PipelineRunner
    from factory.store import Store
    from tests.helpers import generate_pipeline, prompts, write_pipeline

    server_up = threading.Event()

    def script(number, path, payload):
        return chat_reply(n=payload["n"]) if server_up.is_set() else never_answers()

    def probe(path):
        return (200, '{"data": []}', 0.0) if server_up.is_set() else never_answers()

    with FaultServer(script, probe) as server:
        raw = generate_pipeline("served-model", n=1, batch_size=16)
        raw["models"]["m"] = {"name": "served-model", "backend": "openai", "base_url": server.url}  # defaults
        pipeline = write_pipeline(tmp_path, raw, prompts(64))
        store = Store(tmp_path / "store")
        began = time.monotonic()
        (summary,) = PipelineRunner(load_pipeline(pipeline), store).run()
        elapsed = time.monotonic() - began
        assert summary.error_rows == 64
        errors = store.sql("SELECT error FROM responses")["error"].to_list()
        # The first wave (max_concurrency 8) found the server hung; everything after failed at once.
        assert len(server.requests) <= 8 + 5, len(server.requests)
        assert sum("circuit open" in error for error in errors) >= 64 - 8
        assert all("--retry-errors" in error or "no reply" in error for error in errors)
        assert elapsed < 60, f"a hung server held a 64-row stage for {elapsed:.0f}s"

        server_up.set()
        time.sleep(0.1)
        (retried,) = PipelineRunner(load_pipeline(pipeline), store, retry_errors=True).run()
    assert retried.error_rows == 0
    assert store.sql("SELECT count(*) AS n FROM responses WHERE error IS NULL")["n"][0] == 64


def test_breaker_opens_after_consecutive_connection_failures():
    engine = engine_for(f"http://127.0.0.1:{free_port()}/v1", max_retries=2, breaker_failures=3,
                        max_concurrency=1)
    generations = engine.generate([HELLO] * 6, SamplingParams())
    assert "cannot connect" in generations[0].error
    assert all("circuit open after 3 consecutive" in g.error for g in generations[1:])


def test_deadline_bounds_a_call_across_its_retries():
    with FaultServer(lambda *_: (503, "busy", 0.4)) as server:
        began = time.monotonic()
        (generation,) = engine_for(server.url, max_retries=20, deadline_s=1.0).generate([HELLO], SamplingParams())
    assert "deadline of 1s passed" in generation.error
    assert time.monotonic() - began < 5 and len(server.requests) <= 3


def test_a_slow_but_alive_server_is_waited_for():
    # No reply for 1.2 s, but GET /models answers: a long generation, not a hung server.
    with FaultServer(lambda number, path, payload: (*chat_reply()[:2], 1.2)) as server:
        (generation,) = engine_for(server.url, probe_after_s=0.3).generate([HELLO], SamplingParams())
    assert generation.error is None and server.probes and server.probes[0] == "/v1/models"
    assert len(server.requests) == 1


def test_a_request_with_no_reply_and_no_probe_answer_fails_as_hung():
    with FaultServer(never_answers, probe=never_answers) as server:
        (generation,) = engine_for(server.url, probe_after_s=0.3, probe_timeout_s=0.3, max_retries=0,
                                   ).generate([HELLO], SamplingParams())
    assert "no reply in" in generation.error and "GET /models got no answer" in generation.error


def test_an_open_breaker_lets_one_trial_through_after_its_cooldown():
    breaker = Breaker(threshold=2, cooldown_s=0.2)
    breaker.failure("x")
    breaker.check()  # one failure: still closed
    breaker.failure("y")
    try:
        breaker.check()
        raise AssertionError("the breaker should be open")
    except CircuitOpenError as exc:
        assert "last: y" in str(exc)
    time.sleep(0.25)
    breaker.check()  # the trial
    try:
        breaker.check()  # others still fail fast while the trial runs
        raise AssertionError("only one trial per cool-down")
    except CircuitOpenError:
        pass
    breaker.success()
    breaker.check()

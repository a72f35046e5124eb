"""A stage's model time is the union of its engine calls' spans (issue 15): calls in flight together
count once, so a stage never reports more model time than wall time."""

from __future__ import annotations

import threading
import time

import pyarrow as pa

from factory.config import PlannedStage, load_pipeline
from factory.engines import Engine, Generation
from factory.engines.metered import USAGE_KEY, MeteredEngine, Usage, busy_seconds, merge_spans
from factory.engines.shared import LockedEngine
from factory.placement import StageActor
from tests.helpers import generate_pipeline, prompts, write_pipeline


def test_overlapping_spans_count_once():
    assert merge_spans([(3.0, 4.0), (0.0, 2.0), (1.0, 2.5), (2.5, 2.75)]) == [(0.0, 2.75), (3.0, 4.0)]
    assert busy_seconds([(0.0, 2.0), (1.0, 3.0), (5.0, 6.0)]) == 4.0
    assert busy_seconds([]) == 0.0
    usage = Usage(1, 2, 3, [(0.0, 1.0)]) + Usage(1, 1, 1, [(0.5, 2.0)])
    assert (usage.calls, usage.prompt_tokens, usage.completion_tokens, usage.seconds) == (2, 3, 4, 2.0)
    assert Usage.from_json(usage.to_json()) == usage


class SleepyEngine(Engine):
    """A model boundary stand-in: each call (either kind) takes `seconds` and can run beside another."""

    name = "sleepy"

    def __init__(self, seconds: float):
        self.seconds = seconds

    def generate(self, conversations, sampling):
        time.sleep(self.seconds)
        return [Generation(prompt_tokens=1, completions=[]) for _ in conversations]

    def logprobs(self, conversations, responses):
        time.sleep(self.seconds)
        return [[-1.0] for _ in responses]


def generate_stage(tmp_path, model_dir) -> PlannedStage:
    return load_pipeline(write_pipeline(tmp_path, generate_pipeline(str(model_dir), n=1), prompts(1))).stages[0]


def batch_usages(stage: PlannedStage, engine: Engine, threads: int) -> list[Usage]:
    actor = StageActor(stage, "run", {"model": engine})
    usages: list[Usage] = []

    def one() -> None:
        output = actor(pa.table({"id": ["a"], "prompt": ["hi"]}))
        usages.append(Usage.from_json(output.schema.metadata[USAGE_KEY]))

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return usages


def test_concurrent_batches_are_not_counted_twice(tmp_path, tiny_model_dir):
    usages = batch_usages(generate_stage(tmp_path, tiny_model_dir), SleepyEngine(0.4), threads=2)  # two batches in flight at once, one call each
    assert [u.calls for u in usages] == [1, 1]  # each batch counts its own call only
    total = sum(usages, Usage())
    assert 0.4 <= total.seconds < 0.7, total.spans  # the old sum said >= 0.8


def test_a_shared_engine_counts_model_time_not_waiting(tmp_path, tiny_model_dir):
    usages = batch_usages(generate_stage(tmp_path, tiny_model_dir), LockedEngine(SleepyEngine(0.3)), threads=2)  # calls take turns on one model
    assert all(0.3 <= u.seconds < 0.5 for u in usages)  # neither batch counts the other's turn
    assert 0.6 <= sum(usages, Usage()).seconds < 0.9


def test_scoring_calls_are_spans_too():
    metered = MeteredEngine(SleepyEngine(0.3))
    results: list[Usage] = []

    def score() -> None:
        assert metered.logprobs([[{"role": "user", "content": "hi"}]], ["there"]) == [[-1.0]]
        results.append(metered.usage)  # this thread's calls

    workers = [threading.Thread(target=score) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [u.calls for u in results] == [1, 1]
    assert 0.3 <= sum(results, Usage()).seconds < 0.5  # two scoring calls at once: one span's time

"""Streaming runs: stages run at once, a row-wise stage consumes its upstream's commits as they
land, grouping stages wait; a kill at any point resumes to exact counts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import factory.runner as runner_module
from factory.config import load_pipeline
from factory.runner import PipelineRunner
from factory.schedule import plan
from factory.store import Store
from tests.helpers import generate_pipeline, prompts, write_pipeline


def chain(model_dir: str, executor: str = "local", count: int = 12) -> dict:
    """generate -> generate over the first stage's responses -> a grouping stage over them."""
    raw = generate_pipeline(model_dir, executor=executor, n=1, batch_size=1, max_new_tokens=12)
    raw["stages"][0]["config"]["temperature"] = 0.0
    second = dict(raw["stages"][0], name="again", output="again", input={"dataset": "responses"})
    second["config"] = dict(second["config"], prompt_column="response")
    grouped = {"stage": "tests.factory.stage_fixtures:GroupStage", "name": "groups", "input": {"count": 3},
               "config": {"groups": 3}}
    raw["stages"] += [second, grouped]
    return raw


def test_the_plan_streams_row_wise_stages_and_holds_grouping_ones(tmp_path, tiny_model_dir):
    path = write_pipeline(tmp_path, chain(str(tiny_model_dir)), prompts(2))
    first, second, grouped = plan(load_pipeline(path))
    assert (first.waits_for, first.streams_from) == ([], [])
    assert (second.waits_for, second.streams_from) == ([], [0])  # streams behind stage 0
    assert grouped.waits_for == [0, 1] and grouped.streams_from == []


def test_stages_overlap_and_give_what_the_sequential_mode_gives(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(runner_module, "POLL_SECONDS", 0.02)
    path = write_pipeline(tmp_path, chain(str(tiny_model_dir), count=24), prompts(24))
    streamed, sequential = Store(tmp_path / "streamed"), Store(tmp_path / "sequential")
    summaries = PipelineRunner(load_pipeline(path), streamed).run()
    PipelineRunner(load_pipeline(path), sequential, streaming=False).run()
    assert [s.rows for s in summaries] == [24, 24, 3]
    query = "SELECT id, parent_id, response FROM again ORDER BY id"
    assert streamed.sql(query).equals(sequential.sql(query))
    first_done = streamed.sql("SELECT max(created_at) AS t FROM responses")["t"][0]
    second_started = streamed.sql("SELECT min(created_at) AS t FROM again")["t"][0]
    assert second_started < first_done, "the second stage did not start before the first finished"
    runs = streamed.sql("SELECT stage, started_at, finished_at FROM runs ORDER BY stage").rows_by_key("stage")
    assert runs["groups"][0][0] >= max(runs["generate"][0][1], runs["again"][0][1])  # the grouping stage waited
    assert PipelineRunner(load_pipeline(path), streamed).run()[1].rows == 0  # a re-run does nothing


@pytest.mark.slow
def test_a_streaming_run_killed_at_any_point_resumes_exactly(tmp_path, tiny_model_dir):
    path = write_pipeline(tmp_path, chain(str(tiny_model_dir)), prompts(12))
    store_dir = tmp_path / "store"
    command = [sys.executable, "-m", "factory.cli", "run", str(path), "--store", str(store_dir)]
    for wanted in (1, 4):  # kill once the second stage has committed this many batches
        job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
        try:
            deadline = time.time() + 300
            while Store(store_dir).version("again") is None or Store(store_dir).version("again") < wanted:
                if job.poll() is not None:
                    break  # it finished first: the resume below still has to be exact
                assert time.time() < deadline, "no commit of the second stage in time"
                time.sleep(0.05)
        finally:
            if job.poll() is None:
                os.killpg(job.pid, signal.SIGKILL)
            job.wait(timeout=60)
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    store = Store(store_dir)
    for dataset, rows in (("responses", 12), ("again", 12), ("groups", 3)):
        assert store.sql(f"SELECT count(*) AS n, count(DISTINCT id) AS u FROM {dataset}").row(0) == (rows, rows)

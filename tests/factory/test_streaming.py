"""Streaming runs: stages run at once, a row-wise stage consumes its upstream's commits as they
land, a stage taking one upstream input's outputs as a group takes each group once committed,
other grouping stages wait; a kill at any point resumes to exact counts."""

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


PARENTS = {"stage": "tests.factory.stage_fixtures:ParentGroupStage", "name": "parents", "input": {"dataset": "responses"}}


def chain(model_dir: str, executor: str = "local", count: int = 12) -> dict:
    """generate -> generate over the first stage's responses -> a grouping stage over them, and a
    stage grouping the responses by prompt."""
    raw = generate_pipeline(model_dir, executor=executor, n=1, batch_size=1, max_new_tokens=12)
    raw["stages"][0]["config"]["temperature"] = 0.0
    second = dict(raw["stages"][0], name="again", output="again", input={"dataset": "responses"})
    second["config"] = dict(second["config"], prompt_column="prompt")  # the tiny model's responses are often empty
    grouped = {"stage": "tests.factory.stage_fixtures:GroupStage", "name": "groups", "input": {"count": 3},
               "config": {"groups": 3}}
    raw["stages"] += [second, grouped, PARENTS]
    return raw


def test_the_plan_streams_row_wise_stages_and_holds_grouping_ones(tmp_path, tiny_model_dir):
    path = write_pipeline(tmp_path, chain(str(tiny_model_dir)), prompts(2))
    first, second, grouped, parents = plan(load_pipeline(path))
    assert (first.waits_for, first.streams_from) == ([], [])
    assert (second.waits_for, second.streams_from) == ([], [0])  # streams behind stage 0
    assert grouped.waits_for == [0, 1] and grouped.streams_from == []
    assert (parents.waits_for, parents.streams_from) == ([], [0])  # whole groups behind stage 0
    assert parents.parent_fingerprints == [first.stage.fingerprint]


def test_a_group_stage_waits_when_two_stages_write_its_input(tmp_path, tiny_model_dir):
    raw = chain(str(tiny_model_dir))
    other = dict(raw["stages"][0], name="other", config=dict(raw["stages"][0]["config"], seed=2))
    raw["stages"] = [raw["stages"][0], other, PARENTS]  # both write `responses`: a prompt's group spans two
    path = write_pipeline(tmp_path, raw, prompts(2))
    *_, parents = plan(load_pipeline(path))
    assert parents.waits_for == [0, 1] and parents.streams_from == [] and parents.parent_fingerprints is None


def test_whole_groups_stream_behind_their_upstream(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(runner_module, "POLL_SECONDS", 0.02)
    raw = generate_pipeline(str(tiny_model_dir), n=3, batch_size=1, max_new_tokens=12)
    raw["stages"].append(PARENTS)
    path = write_pipeline(tmp_path, raw, prompts(16))
    streamed, sequential = Store(tmp_path / "streamed"), Store(tmp_path / "sequential")
    summaries = PipelineRunner(load_pipeline(path), streamed).run()
    PipelineRunner(load_pipeline(path), sequential, streaming=False).run()
    assert [(s.rows, s.input_rows) for s in summaries] == [(48, 16), (16, 16)]
    query = "SELECT parent_id, members FROM parents ORDER BY parent_id"
    assert streamed.sql(query).equals(sequential.sql(query))
    assert all(len(members) == 3 for members in streamed.sql(query)["members"].to_list())  # never a part-group
    last_response = streamed.sql("SELECT max(created_at) AS t FROM responses")["t"][0]
    first_group = streamed.sql("SELECT min(created_at) AS t FROM parents")["t"][0]
    assert first_group < last_response, "the group stage did not start before its upstream finished"
    assert PipelineRunner(load_pipeline(path), streamed).run()[1].rows == 0  # a re-run does nothing


def test_stages_overlap_and_give_what_the_sequential_mode_gives(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(runner_module, "POLL_SECONDS", 0.02)
    path = write_pipeline(tmp_path, chain(str(tiny_model_dir), count=24), prompts(24))
    streamed, sequential = Store(tmp_path / "streamed"), Store(tmp_path / "sequential")
    summaries = PipelineRunner(load_pipeline(path), streamed).run()
    PipelineRunner(load_pipeline(path), sequential, streaming=False).run()
    assert [(s.rows, s.error_rows) for s in summaries] == [(24, 0), (24, 0), (3, 0), (24, 0)]
    assert all(0 < s.engine_seconds <= s.seconds for s in summaries[:2])  # calls in flight together count once
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
    for dataset, rows in (("responses", 12), ("again", 12), ("groups", 3), ("parents", 12)):
        assert store.sql(f"SELECT count(*) AS n, count(DISTINCT id) AS u FROM {dataset}").row(0) == (rows, rows)

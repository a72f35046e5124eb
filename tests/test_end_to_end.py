"""End to end on the bundled SmolLM2-135M-Instruct and a real local Ray, through the CLI."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from factory.store import Store

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CHECK = "SELECT count(*) AS n, count(DISTINCT id) AS u, count(error) AS e FROM responses"


def factory_command(*args):
    return [sys.executable, "-m", "factory.cli", *args]


def kill_session(process: subprocess.Popen) -> None:
    """SIGKILL the driver and everything it started (Ray's local processes included)."""
    if process.poll() is not None:
        return  # it already ended (the test has failed and says why)
    session = os.getsid(process.pid)
    victims = [p for p in psutil.process_iter() if _sid(p) == session]
    for victim in victims:
        try:
            victim.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    process.wait(timeout=30)


def _sid(process):
    try:
        return os.getsid(process.pid)
    except (ProcessLookupError, PermissionError):
        return None


def test_quickstart_end_to_end_and_rerun(tmp_path, monkeypatch):
    store = tmp_path / "store"
    monkeypatch.chdir(tmp_path)  # training output must not land here (it goes to the store's _artifacts)
    run = subprocess.run(factory_command("run", str(EXAMPLES / "quickstart.yaml"), "--store", str(store)),
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    quickstart = Store(store)
    assert quickstart.sql(CHECK).row(0) == (32, 32, 0)
    made = {info.name: info.rows for info in quickstart.datasets()}
    for dataset in ("skills", "query_types", "instructions", "rewards", "preferences", "safety", "ratings",
                    "feedback_turns", "feedback_responses", "judgments", "win_rates"):
        assert made.get(dataset, 0) > 0, f"quickstart made no {dataset}: {made}"
    assert made["instructions"] == 8 and made["rewards"] == 16
    (trained,) = quickstart.sql(
        "SELECT status, steps, final_model_path, data_row_count, data_ids_hash FROM training_runs").rows()
    assert trained[0] == "completed" and trained[1] == 2 and trained[3] > 0 and len(trained[4]) >= 16
    assert (Path(trained[2]) / "adapter_config.json").exists()  # the LoRA adapter
    assert Path(trained[2]).is_relative_to(store.resolve() / "_artifacts") and not (tmp_path / "train-runs").exists()
    types = quickstart.sql("SELECT query_type, count(*) AS n FROM instructions GROUP BY 1")["n"].to_list()
    assert max(types) - min(types) <= 1  # query types balanced
    again = subprocess.run(factory_command("run", str(EXAMPLES / "quickstart.yaml"), "--store", str(store)),
                           capture_output=True, text=True, timeout=900)
    assert "done: 0 rows written" in again.stdout, again.stderr[-3000:]
    assert "16 already done" in again.stderr and "already done on these rows" in again.stderr
    assert {info.name: info.rows for info in Store(store).datasets() if info.name != "runs"} == {
        name: rows for name, rows in made.items() if name != "runs"}


def test_killed_run_resumes_exactly_and_sql_works_while_it_runs(tmp_path):
    shutil.copy(EXAMPLES / "prompts.jsonl", tmp_path / "prompts.jsonl")
    config = yaml.safe_load((EXAMPLES / "quickstart.yaml").read_text())
    stage = config["stages"][0]
    config["stages"] = [stage]  # the generate stage alone: the kill must land in it
    config.pop("train", None)
    stage["config"].update(n=1, max_new_tokens=32)
    stage["resources"]["batch_size"] = 2  # 8 shards, so the kill lands mid-stage
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(config))
    store = tmp_path / "store"
    command = factory_command("run", str(tmp_path / "p.yaml"), "--store", str(store))

    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 600
        while len(Store(store).files("responses")) < 2:
            assert job.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline, "no shard written in time"
            time.sleep(0.5)
        # A reader during the run: no lock, and it sees only whole shards.
        during = subprocess.run(factory_command("sql", CHECK, "--format", "json", "--store", str(store)),
                                capture_output=True, text=True, timeout=120)
        assert during.returncode == 0, during.stderr
        seen = json.loads(during.stdout)
        assert seen["n"] == seen["u"] >= 2 and seen["n"] % 2 == 0
        assert job.poll() is None, "the run finished before the kill: make it longer"
    finally:
        kill_session(job)
    written = Store(store).sql(CHECK).row(0)[0]
    assert 2 <= written < 16

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert Store(store).sql(CHECK).row(0) == (16, 16, 0)
    assert Store(store).sql("SELECT count(DISTINCT parent_id) AS p FROM responses")["p"][0] == 16

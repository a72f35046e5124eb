"""`factory train` under `ray job submit` on a local Ray head (issue 16, item 5): the run's model
outlives the job — it lives under the store, not in Ray's per-job copy of the working directory —
and a relative `output_dir`, which would land in that copy, is refused in one line (slow)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from factory.store import Store
from tests.helpers import ray_head
from tests.trainers.conftest import _rows, write_config

pytestmark = pytest.mark.slow
JOB_DEADLINE_S = 900  # a job's driver imports torch and Ray Train starts a worker: minutes on a loaded 2-core machine


@pytest.fixture(scope="module")
def head():
    with ray_head() as started:
        yield started


def _submit(head: dict, working_dir: Path, *command: str) -> str:
    submission = f"train-{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [sys.executable, "-m", "ray.scripts.scripts", "job", "submit", "--address", head["address"],
         "--submission-id", submission, "--working-dir", str(working_dir), "--no-wait", "--", *command],
        capture_output=True, text=True, env=head["env"], timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return submission


def _finish(head: dict, submission: str) -> tuple[str, str]:
    from ray.job_submission import JobSubmissionClient

    jobs = JobSubmissionClient(head["address"], headers={"Authorization": f"Bearer {head['token']}"})
    deadline = time.monotonic() + JOB_DEADLINE_S
    while (status := str(jobs.get_job_status(submission))) not in ("SUCCEEDED", "FAILED", "STOPPED"):
        assert time.monotonic() < deadline, f"job {submission} still {status} after {JOB_DEADLINE_S}s"
        time.sleep(2)
    return status, jobs.get_job_logs(submission)


def test_the_model_outlives_the_job_and_a_relative_output_dir_is_refused(head, tmp_path, tiny_model_dir):
    store = Store(tmp_path / "store")
    store.append("responses", pa.Table.from_pylist(_rows("responses")))
    job_files = tmp_path / "job"  # what `--working-dir` ships: Ray unpacks a copy under its session folder
    write_config(job_files, tiny_model_dir, data={"dataset": "responses"}, lora={"r": 4}, output_dir=None)
    train = ["python", "-m", "factory.cli", "train", "sft", "--config", "train.yaml", "--store", store.location]

    status, logs = _finish(head, _submit(head, job_files, *train))
    assert status == "SUCCEEDED", logs[-3000:]
    assert "trained sft/sft on 7 rows (1 held out): 2 steps" in logs
    (row,) = store.sql("SELECT status, output_dir, final_model_path FROM training_runs").to_dicts()
    model = Path(row["final_model_path"])
    assert row["status"] == "completed" and model.is_relative_to(store.artifacts_uri("train-runs"))
    assert head["temp"] not in row["final_model_path"]  # not in Ray's session folder (the job's working dir)
    assert (model / "adapter_model.safetensors").exists() and (model / "adapter_config.json").exists()

    write_config(job_files, tiny_model_dir, data={"dataset": "responses"}, lora={"r": 4}, output_dir="train-runs")
    status, logs = _finish(head, _submit(head, job_files, *train))
    assert status == "FAILED"
    (line,) = [line for line in logs.splitlines() if "error:" in line]
    assert "output_dir" in line and "inside this Ray job's working directory" in line and "Traceback" not in logs
    assert store.sql("SELECT count(*) AS n FROM training_runs")["n"][0] == 1  # the refused run wrote nothing

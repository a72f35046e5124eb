"""`factory submit/status/logs/stop` against a real Ray head on loopback with token authentication."""

import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from tests.helpers import free_port, generate_pipeline, prompts, ray_head, write_pipeline

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def factory(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "factory.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def head():
    with ray_head() as started:
        yield started


def wait_for(head, job_id, states=("SUCCEEDED", "FAILED", "STOPPED"), timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        result = factory("status", job_id, "--address", head["address"], env=head["env"])
        state = next(line.split(": ", 1)[1] for line in result.stdout.splitlines() if line.startswith("status: "))
        if state in states:
            return state
        time.sleep(1)
    raise AssertionError(f"job {job_id} still not in {states}")


def test_submit_status_logs(head, tiny_model_dir, tmp_path):
    folder = tmp_path / "p"
    path = write_pipeline(folder, generate_pipeline(str(tiny_model_dir), executor="local"), prompts(3))
    local_copy = os.path.join(REPO, "examples", f".job-test-{uuid.uuid4().hex[:6]}")
    shutil.copytree(folder, local_copy)  # jobs ship the repository, so the pipeline must live in it
    store = tmp_path / "store"
    try:
        submitted = factory("submit", os.path.join(local_copy, path.name), "--address", head["address"],
                            "--store", str(store), env=head["env"])
        assert submitted.returncode == 0, submitted.stderr[-2000:]
        job_id = submitted.stdout.strip().splitlines()[-1]
        assert job_id.startswith("raysubmit_")
        state = wait_for(head, job_id)
        logs = factory("logs", job_id, "--address", head["address"], "--follow", env=head["env"])
        assert state == "SUCCEEDED", logs.stdout[-3000:]
        assert "done: 6 rows written" in logs.stdout
        runs = factory("runs", "--store", str(store), "--format", "csv")
        assert runs.returncode == 0 and ",completed,6,0," in runs.stdout
    finally:
        shutil.rmtree(local_copy, ignore_errors=True)


def test_bad_inputs_are_one_clear_line(head):
    unknown = factory("status", "raysubmit_nope", "--address", head["address"], env=head["env"])
    assert unknown.returncode == 2 and "no such job" in unknown.stderr and "Traceback" not in unknown.stderr
    wrong = factory("status", "raysubmit_nope", "--address", head["address"],
                    env=dict(head["env"], RAY_AUTH_TOKEN="wrong"))
    assert wrong.returncode == 2 and "authentication failed" in wrong.stderr
    unreachable = factory("status", "x", "--address", f"http://127.0.0.1:{free_port()}", env=head["env"])
    assert unreachable.returncode == 2 and "cannot reach the Ray job server" in unreachable.stderr
    outside = factory("submit", "/tmp/elsewhere.yaml", "--address", head["address"], env=head["env"])
    assert outside.returncode == 2 and "pipeline not found" in outside.stderr

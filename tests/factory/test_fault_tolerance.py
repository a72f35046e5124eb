"""What survives a crash or a clash: concurrent runs, retried error rows, a killed stage actor."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from factory.config import load_pipeline
from factory.runner import PipelineRunner
from factory.store import Store
from tests.factory.engines.fault_server import FaultServer, chat_reply
from tests.helpers import generate_pipeline, prompts, write_pipeline

CHECK = "SELECT count(*) AS n, count(DISTINCT id) AS u FROM responses"


def test_two_runs_at_once_write_no_duplicates(tmp_path, tiny_model_dir):
    path = write_pipeline(tmp_path, generate_pipeline(str(tiny_model_dir), n=2, batch_size=1, max_new_tokens=16),
                          prompts(12))
    command = [sys.executable, "-m", "factory.cli", "run", str(path), "--store", str(tmp_path / "store")]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    assert Store(tmp_path / "store").sql(CHECK).row(0) == (24, 24)
    written = sorted(int(out.split("done: ")[1].split()[0]) for out, _ in outputs)
    assert written == [0, 24]  # the second waited for the first, then found nothing missing


def test_retry_errors_replaces_error_rows_without_duplicates(tmp_path):
    healthy = {"on": False}

    def script(number, path, payload):
        failing = "number 1" in payload["messages"][-1]["content"] and not healthy["on"]
        return (500, "down", 0) if failing else chat_reply(n=payload["n"])

    with FaultServer(script) as server:
        raw = generate_pipeline("served", n=2)
        raw["models"]["m"] = {"name": "served", "backend": "openai", "base_url": server.url, "max_retries": 0}
        path = write_pipeline(tmp_path, raw, prompts(3))
        store = Store(tmp_path / "store")
        (first,) = PipelineRunner(load_pipeline(path), store).run()
        assert (first.rows, first.error_rows) == (5, 1)
        (plain_rerun,) = PipelineRunner(load_pipeline(path), store).run()
        assert plain_rerun.rows == 0  # errors are kept, not retried, unless asked
        healthy["on"] = True
        (retry,) = PipelineRunner(load_pipeline(path), store, retry_errors=True).run()
    assert (retry.rows, retry.error_rows, retry.skipped_rows) == (2, 0, 2)
    assert store.sql(CHECK + " WHERE error IS NULL").row(0) == (6, 6)
    assert store.sql(CHECK).row(0) == (6, 6)


@pytest.mark.slow
def test_killed_stage_actor_is_replaced_and_the_run_completes(tmp_path):
    raw = generate_pipeline("smollm2-135m-instruct", executor="ray", n=1, batch_size=2, max_new_tokens=24)
    raw["models"]["m"]["dtype"] = "auto"
    raw["stages"][0]["resources"]["num_cpus"] = 1
    path = write_pipeline(tmp_path, raw, prompts(12))
    store_dir = tmp_path / "store"
    job = subprocess.Popen([sys.executable, "-m", "factory.cli", "run", str(path), "--store", str(store_dir)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 300
        while len(Store(store_dir).files("responses")) < 1:
            assert job.poll() is None and time.time() < deadline, "no shard in time"
            time.sleep(0.3)
        actors = [p for p in psutil.process_iter(["cmdline"])
                  if "MapWorker" in " ".join(p.info["cmdline"] or []) and os.getsid(p.pid) == os.getsid(job.pid)]
        assert actors, "no stage actor process found"
        for actor in actors:
            actor.send_signal(signal.SIGKILL)
        out, err = job.communicate(timeout=600)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == 0, err[-3000:]
    assert Store(store_dir).sql(CHECK).row(0) == (12, 12)

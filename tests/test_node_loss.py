"""A real two-node Ray cluster on loopback: the node running the stage actor is killed mid-run,
a replacement node joins, and the run completes with the exact rows and no duplicate ids."""

import os
import signal
import subprocess
import sys
import uuid

import psutil
import pytest

from factory.store import Store
from tests.helpers import READY_DEADLINE_S, free_port, generate_pipeline, prompts, wait_until_ready, write_pipeline

pytestmark = pytest.mark.slow
CHECK = "SELECT count(*) AS n, count(DISTINCT id) AS u FROM responses"




def ray_start(env, *args):
    result = subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "start", "--disable-usage-stats",
                             "--node-ip-address=127.0.0.1", *args], capture_output=True, text=True, env=env,
                            timeout=READY_DEADLINE_S)  # `ray start` returns once the node is up
    assert result.returncode == 0, result.stderr[-2000:]


def raylet_of(port: int) -> psutil.Process:
    for process in psutil.process_iter(["cmdline"]):
        if f"--node_manager_port={port}" in " ".join(process.info["cmdline"] or []) and "raylet" in process.name():
            return process
    raise AssertionError(f"no raylet on port {port}")


def kill_tree(process: psutil.Process) -> None:
    for victim in [process, *process.children(recursive=True)]:
        try:
            victim.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass


def test_losing_the_worker_node_redoes_its_work_elsewhere(tmp_path):
    temp = f"/tmp/rn-{uuid.uuid4().hex[:6]}"
    head_port = free_port()
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    env.pop("RAY_ADDRESS", None)
    address = f"127.0.0.1:{head_port}"
    # The head has no CPUs, so the stage actor can only live on a worker node.
    ray_start(env, "--head", f"--port={head_port}", "--num-cpus=0", "--include-dashboard=false", f"--temp-dir={temp}")
    first_port, second_port = free_port(), free_port()
    try:
        ray_start(env, f"--address={address}", "--num-cpus=2", f"--node-manager-port={first_port}")
        raw = generate_pipeline("smollm2-135m-instruct", executor="ray", n=1, batch_size=2, max_new_tokens=24)
        raw["models"]["m"]["dtype"] = "auto"
        raw["stages"][0]["resources"]["num_cpus"] = 2
        path = write_pipeline(tmp_path, raw, prompts(12))
        store = tmp_path / "store"
        job = subprocess.Popen([sys.executable, "-m", "factory.cli", "run", str(path), "--store", str(store)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(env, RAY_ADDRESS=address))
        wait_until_ready("the run's first committed shard of responses (before killing its node)",
                         lambda: len(Store(store).files("responses")) >= 1, process=job, interval_s=0.3)
        kill_tree(raylet_of(first_port))  # the node and every worker process on it
        assert Store(store).sql(CHECK).row(0)[0] < 12, "the run finished before the node was lost"
        ray_start(env, f"--address={address}", "--num-cpus=2", f"--node-manager-port={second_port}")
        out, err = job.communicate(timeout=600)
        assert job.returncode == 0, err[-3000:]
        assert Store(store).sql(CHECK).row(0) == (12, 12)
    finally:
        for process in psutil.process_iter(["cmdline"]):
            line = " ".join(process.info["cmdline"] or [])
            if temp in line or address in line or str(first_port) in line or str(second_port) in line:
                try:
                    process.kill()
                except psutil.Error:
                    pass

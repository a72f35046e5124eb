"""A real Ray cluster on loopback (head + two worker nodes, engines pinned to nodes by custom
resources): a worker node is killed mid-run, a replacement joins, and the run completes with the exact
rows and no duplicate ids (issue 15: engines as shared actors, stages streaming across nodes)."""

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


def pipeline_on_three_nodes(judge_model: str) -> dict:
    """generate -> judge (single) and llama_guard: the generator's engine pinned to the `gen_node`
    worker, the judge's (also the guard's) to the `judge_node` worker, through custom resources."""
    raw = generate_pipeline("smollm2-135m-instruct", executor="ray", n=1, batch_size=2, max_new_tokens=24)
    raw["models"] = {"gen": {"name": "smollm2-135m-instruct", "resources": {"gen_node": 1}},
                     "judge": {"name": judge_model, "dtype": "float32", "resources": {"judge_node": 1}}}
    raw["stages"][0]["model"] = "gen"
    raw["stages"] += [
        {"stage": "judge", "name": "single", "input": {"dataset": "responses"}, "model": "judge",
         "config": {"strategy": "single"}},
        {"stage": "llama_guard", "input": {"dataset": "responses"}, "model": "judge",
         "config": {"role": "Agent", "taxonomy": "v3", "generate": False}, "resources": {"batch_size": 2}},
    ]
    return raw


def test_engines_pinned_to_nodes_overlap_and_survive_losing_a_node(tmp_path, tiny_model_dir):
    """Head (no CPUs) + a generator node + a judge node on loopback. The guard streams from the
    generator while it runs; the generator's node (its engine actor and any stage actors there) is
    killed mid-run, a replacement joins, and the run completes with exact rows and no duplicate ids."""
    temp = f"/tmp/rn-{uuid.uuid4().hex[:6]}"
    head_port = free_port()
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    env.pop("RAY_ADDRESS", None)
    address = f"127.0.0.1:{head_port}"
    ray_start(env, "--head", f"--port={head_port}", "--num-cpus=0", "--include-dashboard=false", f"--temp-dir={temp}")
    gen_port, judge_port, replacement_port = free_port(), free_port(), free_port()
    try:
        ray_start(env, f"--address={address}", "--num-cpus=1", f"--node-manager-port={gen_port}",
                  '--resources={"gen_node": 1}')
        ray_start(env, f"--address={address}", "--num-cpus=1", f"--node-manager-port={judge_port}",
                  '--resources={"judge_node": 1}')
        path = write_pipeline(tmp_path, pipeline_on_three_nodes(str(tiny_model_dir)), prompts(12))
        store = tmp_path / "store"
        job = subprocess.Popen([sys.executable, "-m", "factory.cli", "run", str(path), "--store", str(store)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(env, RAY_ADDRESS=address))
        wait_until_ready("the run's first committed shard of responses (before killing the generator's node)",
                         lambda: len(Store(store).files("responses")) >= 1, process=job, interval_s=0.3)
        kill_tree(raylet_of(gen_port))  # the node, its engine actor and every worker process on it
        assert Store(store).sql(CHECK).row(0)[0] < 12, "the run finished before the node was lost"
        ray_start(env, f"--address={address}", "--num-cpus=1", f"--node-manager-port={replacement_port}",
                  '--resources={"gen_node": 1}')
        out, err = job.communicate(timeout=900)
        assert job.returncode == 0, err[-3000:]
        result = Store(store)
        assert result.sql(CHECK).row(0) == (12, 12)
        for dataset in ("judgments", "safety"):
            assert result.sql(f"SELECT count(*), count(DISTINCT id) FROM {dataset}").row(0) == (12, 12), dataset
        times = {row["stage"]: row for row in result.sql(
            "SELECT stage, epoch(started_at) AS started, epoch(finished_at) AS finished FROM runs").to_dicts()}
        generate, guard = times["generate"], times["llama_guard"]
        overlap = min(generate["finished"], guard["finished"]) - max(generate["started"], guard["started"])
        assert overlap > 0, f"the guard did not run while the generator did: {times}"
    finally:
        for process in psutil.process_iter(["cmdline"]):
            line = " ".join(process.info["cmdline"] or [])
            if temp in line or address in line or any(str(port) in line for port in (gen_port, judge_port,
                                                                                       replacement_port)):
                try:
                    process.kill()
                except psutil.Error:
                    pass

"""Ray's own log lines stay out of the user's terminal and go to a log file the run names
(issue 16, item 10): a `factory run` on local Ray, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import generate_pipeline, prompts, write_pipeline

# What a fresh-clone quickstart printed between the factory's lines.
RAY_FRAGMENTS = ("execution finished", "core_worker", "Started a local Ray instance", "Progress bars disabled",
                 "Token authentication", "INFO", "WARNING")
FACTORY_LINES = ("run ", "Ray's own log lines go to ", "seeds ", "stage ", "done: ")


@pytest.mark.slow
def test_a_ray_run_prints_only_the_factorys_lines(tmp_path, tiny_model_dir):
    path = write_pipeline(tmp_path, generate_pipeline(str(tiny_model_dir), executor="ray", n=1, max_new_tokens=4),
                          prompts(4))
    env = {**os.environ, "FACTORY_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-m", "factory.cli", "run", str(path), "--store", str(tmp_path / "store")],
                            capture_output=True, text=True, timeout=900, env=env, cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stderr
    terminal = result.stdout + result.stderr
    for fragment in RAY_FRAGMENTS:
        assert fragment not in terminal, terminal
    lines = [line for line in terminal.splitlines() if line.strip()]
    assert all(line.startswith(FACTORY_LINES) for line in lines), terminal
    assert "done: 4 rows written, 0 error rows" in result.stdout

    (log,) = (tmp_path / "cache" / "logs").glob("ray-*.log")
    assert f"Ray's own log lines go to {log}" in result.stderr
    text = log.read_text()
    assert "Started a local Ray instance" in text and "execution finished" in text
    assert "core_worker.cc" in text  # the driver's C++ lines (descriptor 2) too

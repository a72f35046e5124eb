"""Fixtures for the trainer tests: one local Ray for the session, a store with small training sets."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from factory.store import Store

PROMPTS = ["write a short poem about the sea", "explain why the sky is blue", "say hello to the world"]
GOOD = ["the sea and the sky are blue", "the sky is blue because of the light", "hello world"]
BAD = ["no", "maybe", "0 1 2"]


def _rows(kind: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(8):
        p, good, bad = PROMPTS[i % 3], GOOD[i % 3], BAD[i % 3]
        base = {"id": f"{kind}{i}", "run_id": "run-a" if i < 4 else "run-b", "error": None}
        if kind == "responses":
            rows.append(base | {"prompt": p, "response": good})
        elif kind == "pairs":
            rows.append(base | {"prompt": p, "chosen": good, "rejected": bad, "preference_strength": -(1 + i % 3)})
        elif kind == "helpsteer_pairs":
            rows.append(base | {"prompt": p, "response_1": good, "response_2": bad, "preference_strength": -(1 + i % 3)})
        else:  # ratings: two responses per prompt, one attribute missing now and then
            for j, text in enumerate((good, bad)):
                score = 4.0 - 3 * j
                rows.append({"id": f"{kind}{i}-{j}", "run_id": "run-a", "error": None, "prompt": p + f" {i}",
                             "response": text, "helpfulness": score, "correctness": None if i == 0 else score,
                             "coherence": 3.0, "complexity": 1.0 + j, "verbosity": float(len(text.split()) % 5)})
    if kind == "responses":  # an error row that must never be trained on
        rows.append({"id": "err", "run_id": "run-a", "error": "boom", "prompt": "x", "response": None})
    return rows


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for every test that trains (starting it costs seconds)."""
    import ray

    if ray.is_initialized():  # an earlier test's local Ray (the runner's): share it, leave it running
        yield
        return
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def train_store(tmp_path_factory) -> Store:
    store = Store(tmp_path_factory.mktemp("train-store"))
    for name in ("responses", "pairs", "helpsteer_pairs", "ratings"):
        store.append(name, pa.Table.from_pylist(_rows(name)))
    return store


def write_config(folder: Path, model: Path, **overrides: Any) -> Path:
    """A training YAML; `output_dir=None` leaves it out (runs then live in the store's `_artifacts`)."""
    config = {"model": str(model), "output_dir": str(folder / "runs"),
              "training": {"max_steps": 2, "batch_size": 2, "max_length": 64, "learning_rate": 1e-3}}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    config = {key: value for key, value in config.items() if value is not None}
    path = folder / "train.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path

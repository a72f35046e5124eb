"""Shared fixtures: a tiny random Llama with a freshly trained BPE tokenizer (see tests/helpers.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.helpers import build_tiny_model

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved tiny model folder: usable as a model name in pipelines (a local path)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir):
    from factory.engines import ModelSpec, load_engine

    return load_engine(ModelSpec(name=str(tiny_model_dir), dtype="float32"))

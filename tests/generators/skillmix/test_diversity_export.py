import datasets
import numpy as np
import pyarrow as pa
import pytest

from factory.cli import EXPORT_FORMATS  # every package's formats, as `factory export` has them
from factory.export import export_dataset
from factory.stage import StageContext
from factory.store import Store
from generators.skillmix.stages.dedup import DedupConfig, DedupStage
from generators.offline.diversity import main
from generators.skillmix.diversity import diversity_report, near_duplicate_groups
from generators.skillmix.stages.generate import SkillMixConfig, SkillMixGenerateStage
from tests.generators.skillmix.fakes import ScriptedEngine


def unit(*rows):
    vectors = np.array(rows, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_report_mean_cosine_and_near_duplicates():
    vectors = unit([1, 0, 0], [1, 0.01, 0], [0, 1, 0], [0, 0, 1])
    report = diversity_report(vectors, threshold=0.95)
    assert report.rows == 4 and report.near_duplicate_pairs == 1 and report.near_duplicate_rows == 1
    assert report.mean_cosine == pytest.approx((1 + 0.01 / np.sqrt(1.0001) * 1) / 6, abs=1e-3)
    assert near_duplicate_groups(vectors, 0.95) == [0, 0, 2, 3]


@pytest.fixture
def store_with_instructions(tmp_path):
    store = Store(tmp_path / "store")
    store.append("query_types", pa.table({"id": ["t1"], "name": ["Planning"], "definition": ["plans"]}))
    skills = pa.table({"id": ["a", "b", "c"], "name": ["baking", "budgeting", "poetry"]})
    config = SkillMixConfig(num_examples=4)
    items = SkillMixGenerateStage.prepare_input(config, skills, {"query_types": store.arrow("SELECT * FROM query_types")})
    stage = SkillMixGenerateStage(StageContext("skillmix", config, "run-1", "fp", {"model": ScriptedEngine()}))
    store.append("instructions", stage(items))
    return store


def test_sft_and_alpaca_exports_load_with_datasets(tmp_path, store_with_instructions):
    sft = export_dataset(store_with_instructions, "instructions", tmp_path / "sft", fmt="sft")
    rows = datasets.load_from_disk(str(sft.path))
    assert sft.rows == 4 and rows[0]["messages"][0]["role"] == "user"
    assert rows[0]["messages"][1] == {"role": "assistant", "content": "A detailed answer that fits."}
    alpaca = export_dataset(store_with_instructions, "instructions", tmp_path / "alpaca", fmt="alpaca", formats=EXPORT_FORMATS)
    loaded = datasets.load_dataset("parquet", data_files=f"{alpaca.path}/data/*.parquet", split="train")
    assert loaded.column_names == ["id", "instruction", "input", "output"]
    assert loaded[0]["input"] == "" and loaded[0]["output"] == "A detailed answer that fits."
    assert loaded[0]["instruction"].startswith("A sharper question needing")


def test_dedup_stage_drops_near_duplicate_instructions(store_with_instructions):
    rows = pa.table({
        "id": ["x1", "x2", "x3", "x4"], "example_index": [0, 1, 2, 3],
        "instruction": ["How do I bake sourdough bread at home?", "How can I bake sourdough bread at home?",
                        "Write a haiku about the sea.", None],
        "response": ["r1", "r2", "r3", None], "skills": [["a", "b"]] * 4,
        "error": [None, None, None, "broken"],
    })
    kept = DedupStage.prepare_input(DedupConfig(threshold=0.9), rows, {})
    assert kept.column("id").to_pylist() == ["x1", "x3"]
    out = DedupStage(StageContext("dedup", DedupConfig(), "run-1", "fp", {}))(kept).to_pylist()
    assert [r["parent_id"] for r in out] == ["x1", "x3"] and out[0]["response"] == "r1"
    assert out[0]["skills"] == ["a", "b"] and out[0]["id"] not in ("x1", "x3")
    only_errors = DedupStage.prepare_input(DedupConfig(), rows.slice(3), {})
    assert only_errors.num_rows == 0


def test_diversity_command_line(capsys, store_with_instructions):
    assert main(["--store", store_with_instructions.location, "--threshold", "0.99"]) == 0
    printed = capsys.readouterr().out
    assert '"rows": 4' in printed and '"mean_cosine"' in printed
    assert main(["--store", store_with_instructions.location, "--dataset", "nothing"]) == 2

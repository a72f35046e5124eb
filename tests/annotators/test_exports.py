import json

import datasets
import pytest

from factory.config import load_pipeline
from factory.cli import EXPORT_FORMATS  # every package's formats, as `factory export` has them
from factory.export import export_dataset
from factory.runner import PipelineRunner
from factory.store import Store
from tests.helpers import prompts, write_pipeline



def is_messages(feature) -> bool:
    """A list of {role, content} strings (polars gives Arrow large types; datasets reads them as strings)."""
    inner = feature.feature if isinstance(feature, (datasets.LargeList, datasets.List)) else feature[0]
    return set(inner) == {"role", "content"} and all(v.dtype in ("string", "large_string") for v in inner.values())


@pytest.fixture(scope="module")
def annotated_store(tmp_path_factory, long_model_dir, base_model_dir):
    folder = tmp_path_factory.mktemp("annotated")
    config = {
        "name": "export-test", "executor": "local",
        "models": {"m": {"name": str(long_model_dir), "dtype": "float32"},
                   "weak": {"name": str(base_model_dir), "dtype": "float32"}},
        "stages": [
            {"stage": "generate", "input": {"seed": "prompts.jsonl"}, "model": "m", "config": {"n": 3, "max_new_tokens": 5}},
            {"stage": "cdr", "input": {"dataset": "responses"}, "models": {"strong": "m", "weak": "weak"}},
            {"stage": "cdr_pairs", "input": {"dataset": "rewards"}},
            {"stage": "helpsteer", "input": {"dataset": "responses"}, "model": "m"},
            {"stage": "helpsteer_aggregate", "input": {"dataset": "ratings"}},
            {"stage": "helpsteer_preference", "input": {"dataset": "responses"}, "model": "m",
             "config": {"justify": False}},
            {"stage": "import_preferences", "input": {"seed": "human.jsonl"}},
        ],
    }
    (folder / "human.jsonl").write_text(json.dumps({"id": "h1", "prompt": "p", "response_1": "a", "response_2": "b",
                                                    "rater": "ann", "preference_strength": 2}) + "\n")
    store = Store(folder / "store")
    PipelineRunner(load_pipeline(write_pipeline(folder, config, prompts(3))), store).run()
    return store


def load_both(path):
    on_disk = datasets.load_from_disk(str(path))
    parquet = datasets.load_dataset("parquet", data_files=f"{path}/data/*.parquet", split="train")
    assert on_disk.features == parquet.features and on_disk.num_rows == parquet.num_rows
    return on_disk


def test_helpsteer2_export(annotated_store, tmp_path):
    for dataset in ("ratings", "aggregated_ratings"):
        export_dataset(annotated_store, dataset, tmp_path / dataset, fmt="helpsteer2", formats=EXPORT_FORMATS)
        data = load_both(tmp_path / dataset)
        assert data.column_names == ["prompt", "response", "helpfulness", "correctness", "coherence", "complexity",
                                     "verbosity"]
        assert data.features["helpfulness"] == datasets.Value("int64") and data.num_rows == 9
        assert all(0 <= value <= 4 for column in data.column_names[2:] for value in data[column])


def test_helpsteer2_preference_export(annotated_store, tmp_path):
    export_dataset(annotated_store, "helpsteer_preferences", tmp_path / "p", fmt="helpsteer2-preference", formats=EXPORT_FORMATS)
    data = load_both(tmp_path / "p")
    assert data.column_names == ["prompt", "response_1", "response_2", "preference_strength", "preference_statement",
                                 "preference_elaboration", "justification"]
    assert data.features["preference_strength"] == datasets.Value("int32")  # as in the data card
    assert data.num_rows == 4 and all(-3 <= s <= 3 for s in data["preference_strength"])


@pytest.mark.parametrize("dataset", ["preferences", "helpsteer_preferences"])
def test_rm_and_dpo_exports(annotated_store, tmp_path, dataset):
    export_dataset(annotated_store, dataset, tmp_path / "rm", fmt="rm")
    rm = load_both(tmp_path / "rm")
    assert rm.column_names == ["chosen", "rejected", "margin"] and rm.num_rows > 0
    assert is_messages(rm.features["chosen"]) and is_messages(rm.features["rejected"]) and rm.features["margin"] == datasets.Value("float64")
    assert [t["role"] for t in rm[0]["chosen"]] == ["user", "assistant"] and all(m > 0 for m in rm["margin"])
    if dataset == "helpsteer_preferences":  # the human row: strength +2 -> response 2 chosen, margin 2
        human = [i for i, turns in enumerate(rm["chosen"]) if turns[0]["content"] == "p"]
        assert [rm[i]["chosen"][1]["content"] for i in human] == ["b"] and rm[human[0]]["margin"] == 2.0
    export_dataset(annotated_store, dataset, tmp_path / "dpo", fmt="dpo")
    dpo = load_both(tmp_path / "dpo")
    assert dpo.column_names == ["prompt", "chosen", "rejected"] and dpo.num_rows == rm.num_rows
    assert is_messages(dpo.features["prompt"]) and is_messages(dpo.features["chosen"]) and dpo[0]["chosen"][0]["role"] == "assistant"
    assert dpo[0]["prompt"][0]["content"] == rm[0]["chosen"][0]["content"]

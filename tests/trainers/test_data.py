"""Store rows -> TRL formats; bad queries and configs fail before any training, naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from factory.errors import ConfigError
from trainers.config import load_train_config
from trainers.data import TrainingDataError, load_training_data, split
from trainers.artifacts import run_name
from trainers.run import train
from tests.trainers.conftest import write_config


def _data(tmp_path, tiny_model_dir, store, kind, **overrides):
    return load_training_data(load_train_config(write_config(tmp_path, tiny_model_dir, **overrides), kind), store)


def test_sft_messages_from_prompt_and_response_without_error_rows(tmp_path, tiny_model_dir, train_store):
    data = _data(tmp_path, tiny_model_dir, train_store, "sft", data={"dataset": "responses"}, eval_fraction=0.25)
    assert len(data.train) + len(data.eval) == 8  # the error row is left out
    assert "err" not in data.snapshot.row_ids
    assert data.train[0]["messages"][0]["role"] == "user" and data.train[0]["messages"][-1]["role"] == "assistant"
    assert data.snapshot.source_run_ids == ["run-a", "run-b"] and len(data.snapshot.ids_hash) == 64


def test_helpsteer_pairs_are_oriented_by_strength(tmp_path, tiny_model_dir, train_store):
    data = _data(tmp_path, tiny_model_dir, train_store, "dpo", data={"dataset": "helpsteer_pairs"}, eval_fraction=0)
    row = data.train[0]
    assert row["prompt"][-1]["role"] == "user"
    assert row["chosen"][0]["content"] != "no" and row["rejected"][0]["content"] in ("no", "maybe", "0 1 2")


def test_reward_formats_carry_margin_and_scale(tmp_path, tiny_model_dir, train_store):
    margin = _data(tmp_path, tiny_model_dir, train_store, "rm", data={"dataset": "pairs"}, rm={"objective": "margin"})
    assert set(margin.train.column_names) == {"prompt", "chosen", "rejected", "margin"}
    assert all(m in (1.0, 2.0, 3.0) for m in margin.train["margin"])
    scaled = _data(tmp_path, tiny_model_dir, train_store, "rm", data={"dataset": "pairs"}, rm={"objective": "scaled_bt"})
    assert "scale" in scaled.train.column_names


def test_regression_keeps_missing_labels_as_none(tmp_path, tiny_model_dir, train_store):
    data = _data(tmp_path, tiny_model_dir, train_store, "rm", data={"dataset": "ratings"},
                 rm={"objective": "regression"}, eval_fraction=0)
    labels = data.train["labels"]
    assert all(len(row) == 5 for row in labels) and any(row[1] is None for row in labels)


def test_missing_columns_are_named(tmp_path, tiny_model_dir, train_store):
    with pytest.raises(TrainingDataError, match="preference_strength") as info:
        _data(tmp_path, tiny_model_dir, train_store, "rm", data={"query": "SELECT id, prompt, chosen, rejected FROM pairs"},
              rm={"objective": "scaled_bt"})
    assert "objective scaled_bt" in str(info.value)
    with pytest.raises(TrainingDataError, match="chosen, rejected"):
        _data(tmp_path, tiny_model_dir, train_store, "dpo", data={"dataset": "responses"})
    with pytest.raises(TrainingDataError, match="helpfulness, correctness, coherence, complexity, verbosity"):
        _data(tmp_path, tiny_model_dir, train_store, "rm", data={"dataset": "responses"}, rm={"objective": "regression"})


def test_bad_query_fails_before_training(tmp_path, tiny_model_dir, train_store):
    config = load_train_config(write_config(tmp_path, tiny_model_dir, data={"dataset": "responses", "where": "1 = 0"}),
                               "sft")
    with pytest.raises(TrainingDataError, match="no rows"):
        train(config, train_store)
    assert not Path(config.output_dir).exists()  # nothing was launched


def test_config_errors_name_the_field(tmp_path, tiny_model_dir):
    with pytest.raises(ConfigError, match=r"training\.max_stepz"):
        load_train_config(write_config(tmp_path, tiny_model_dir, data={"dataset": "x"}, training={"max_stepz": 1}), "sft")
    with pytest.raises(ConfigError, match="section\\(s\\) dpo"):
        load_train_config(write_config(tmp_path, tiny_model_dir, data={"dataset": "x"}, dpo={"beta": 0.2}), "sft")
    with pytest.raises(ConfigError, match="exactly one of 'query' or 'dataset'"):
        load_train_config(write_config(tmp_path, tiny_model_dir, data={"where": "x"}), "sft")
    with pytest.raises(ConfigError, match="regression_data"):
        load_train_config(write_config(tmp_path, tiny_model_dir, data={"dataset": "x"},
                                       rm={"objective": "regression_then_scaled_bt"}), "rm")


def test_split_is_stable(tmp_path, tiny_model_dir):
    rows = [{"i": i} for i in range(10)]
    ids = [f"r{i}" for i in range(10)]
    assert split(rows, ids, 0.2) == split(rows, ids, 0.2) and len(split(rows, ids, 0.2)[1]) == 2


def test_run_name_is_keyed_by_store_rows_and_config_but_not_max_steps(tmp_path, tiny_model_dir):
    """Only the same settings on the same rows of the same store resume a run; a longer max_steps
    continues it (issue 16: a quickstart into a second store resumed the first store's checkpoint)."""
    from factory.store import Store

    short = load_train_config(write_config(tmp_path, tiny_model_dir, data={"dataset": "x"}), "sft")
    long = short.model_copy(deep=True)
    long.training.max_steps = 99
    elsewhere = short.model_copy(deep=True)
    elsewhere.output_dir = str(tmp_path / "elsewhere")
    other_lr = short.model_copy(deep=True)
    other_lr.training.learning_rate = 0.5
    store, other_store = Store(tmp_path / "a"), Store(tmp_path / "b")
    name = run_name(short, store, "rows-1")
    assert name.startswith("sft-") and name == run_name(long, store, "rows-1") == run_name(elsewhere, store, "rows-1")
    assert name == run_name(short, Store(str(tmp_path / "x" / ".." / "a")), "rows-1")  # one store, two spellings
    assert len({name, run_name(short, other_store, "rows-1"), run_name(short, store, "rows-2"),
                run_name(other_lr, store, "rows-1")}) == 4
    named = short.model_copy(deep=True)
    named.run_name = "mine"
    assert run_name(named, store, "rows-1").startswith("mine-")


def test_training_data_is_read_at_recorded_table_versions(tmp_path, tiny_model_dir):
    """The run records the table version of every data set; reading at those versions gives the
    same rows after the data set changed, through `--as-of TRAINING_RUN_ID` too."""
    import json

    import pyarrow as pa

    from factory.snapshots import resolve_as_of
    from factory.store import Store
    from tests.trainers.conftest import _rows

    store = Store(tmp_path / "store")
    rows = [row for row in _rows("responses") if row["error"] is None]
    store.append("responses", pa.Table.from_pylist(rows[:4]))
    data = _data(tmp_path, tiny_model_dir, store, "sft", data={"dataset": "responses"})
    assert data.snapshot.versions == {"responses": store.version("responses")}
    store.append("responses", pa.Table.from_pylist(rows[4:]))
    store.delete("responses", [rows[0]["id"]])
    store.append("training_runs", pa.table({"id": ["t1"], "data_versions": [json.dumps(data.snapshot.versions)]}))
    then = store.sql("SELECT id FROM responses ORDER BY id", as_of=resolve_as_of(store, ["t1"]))["id"].to_list()
    assert then == sorted(data.snapshot.row_ids)
    assert store.sql("SELECT count(*) AS n FROM responses")["n"][0] == len(rows) - 1

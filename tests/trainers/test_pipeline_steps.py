"""Training steps of a pipeline (issue 16, item 9): a step with no training rows is a clear skip and
the run exits 0 (the README's `--limit 4` quickstart exited 2 after all its stages); a bad training
config fails before any stage runs, naming the step and the field."""

from __future__ import annotations

import yaml

from factory.cli import main
from factory.store import Store
from tests.helpers import generate_pipeline, prompts, write_pipeline
from tests.trainers.conftest import write_config


def _pipeline(tmp_path, tiny_model_dir, where: str | None = None, **training):
    config = write_config(tmp_path / "train", tiny_model_dir, data={"dataset": "responses"}, output_dir=None,
                          training=training)
    raw = generate_pipeline(str(tiny_model_dir), n=1, max_new_tokens=4)
    raw["train"] = [{"kind": "sft", "config": str(config), **({"where": where} if where else {})}]
    return write_pipeline(tmp_path / "pipeline", raw, prompts(2))


def test_a_step_without_training_rows_is_skipped_and_the_run_succeeds(tmp_path, tiny_model_dir, capsys):
    path = _pipeline(tmp_path, tiny_model_dir, where="finish_reason = 'stop' AND 1 = 0")
    store = tmp_path / "store"
    assert main(["run", str(path), "--store", str(store), "--limit", "2"]) == 0
    captured = capsys.readouterr()
    assert "done: 2 rows written" in captured.out
    text = " ".join((captured.out + captured.err).split())  # rich wraps long lines
    assert "train sft (train.yaml): skipped, no training rows: data: the query returned no rows" in text
    assert not Store(store).has("training_runs")


def test_a_bad_training_config_fails_before_any_stage(tmp_path, tiny_model_dir, capsys):
    path = _pipeline(tmp_path, tiny_model_dir, max_stepz=2)
    store = tmp_path / "store"
    assert main(["run", str(path), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if "error:" in line]
    assert "train[0].config" in line and "training.max_stepz" in line and "Traceback" not in err
    assert not store.exists() or Store(store).dataset_names() == []  # no stage ran


def test_the_quickstart_training_config_names_no_working_directory():
    """examples/ must not send training output to the directory the user runs from."""
    from pathlib import Path

    examples = Path(__file__).parents[2] / "examples"
    for path in sorted(examples.glob("train_*.yaml")):
        assert "output_dir" not in yaml.safe_load(path.read_text()), path.name

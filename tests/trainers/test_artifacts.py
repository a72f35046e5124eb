"""Where training runs live and when they resume (issue 16, items 5 and 9): by default under the
store, never in the working directory; keyed by store + rows + config, so a second store starts
fresh; a finished run is 'already done', and no run trains past max_steps (slow: starts Ray Train)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from factory.cli import main
from factory.store import Store
from tests.trainers.conftest import _rows, write_config

pytestmark = pytest.mark.slow


def _store(path: Path) -> Store:
    store = Store(path)
    store.append("responses", pa.Table.from_pylist(_rows("responses")))
    return store


def _train(capsys, config: Path, store: Store, *extra: str) -> str:
    code = main(["train", "sft", "--config", str(config), "--store", store.location, *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def _runs(store: Store) -> list[dict]:
    return store.sql("SELECT id, run_name, steps, resumed_from_step, output_dir, final_model_path FROM training_runs "
                     "ORDER BY finished_at").to_dicts()


def test_runs_live_in_the_store_resume_only_their_own_and_stop_at_max_steps(tmp_path, tiny_model_dir, ray_session,
                                                                            capsys, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    config = write_config(tmp_path / "config", tiny_model_dir, data={"dataset": "responses"}, lora={"r": 4},
                          output_dir=None)
    first, second = _store(tmp_path / "one"), _store(tmp_path / "two")  # the same rows in two stores

    out = _train(capsys, config, first)
    assert "2 steps," in out and "resumed" not in out
    (run,) = _runs(first)
    home = Path(first.artifacts_uri("train-runs"))
    assert Path(run["output_dir"]) == home / run["run_name"] and run["run_name"].startswith("sft-")
    assert Path(run["final_model_path"]).is_relative_to(home)
    assert (Path(run["final_model_path"]) / "adapter_model.safetensors").exists()
    assert list(cwd.iterdir()) == []  # nothing lands where the command ran
    assert "_artifacts" not in first.dataset_names()

    # The second store trains its own run from step 0, not on from the first store's checkpoint.
    out = _train(capsys, config, second)
    assert "2 steps," in out and "resumed" not in out
    (other,) = _runs(second)
    assert other["run_name"] != run["run_name"] and (other["steps"], other["resumed_from_step"]) == (2, 0)

    # The same config on the same rows again: already done, nothing trained, no row added.
    out = _train(capsys, config, first)
    assert f"run {run['run_name']} already done on these rows: 2 steps (max_steps 2)" in out
    assert len(_runs(first)) == 1

    # A longer max_steps continues the run; it ends exactly at the new max_steps.
    out = _train(capsys, config, first, "--max-steps", "3")
    assert "3 steps (resumed from step 2)" in out
    longer = _runs(first)[-1]
    assert (longer["run_name"], longer["steps"]) == (run["run_name"], 3)

    # Its row gone (say, a crash after training), the run's checkpoint is at max_steps already: it is
    # reported again as it is, not trained one step further (it was: "4 steps (resumed from step 3)").
    first.delete("training_runs", [row["id"] for row in _runs(first)])
    out = _train(capsys, config, first, "--max-steps", "3")
    assert "already done on these rows: 3 steps (max_steps 3)" in out
    (again,) = _runs(first)
    assert (again["steps"], again["resumed_from_step"]) == (3, 3) and Path(again["final_model_path"]).exists()


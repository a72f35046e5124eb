"""The `factory` command as a user runs it: subprocesses, exit codes, one-line errors."""

import json
import subprocess
import sys

import datasets
import pytest

from factory.store import Store
from tests.helpers import generate_pipeline, prompts, write_pipeline


def factory(*args, store=None, check=True):
    command = [sys.executable, "-m", "factory.cli", *args]
    if store is not None:
        command += ["--store", str(store)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def assert_user_error(result, *fragments):
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def filled_store(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("cli")
    path = write_pipeline(folder, generate_pipeline(str(tiny_model_dir)), prompts(4))
    factory("run", str(path), "--executor", "local", store=folder / "store")
    return folder / "store"


def test_run_sql_and_datasets(filled_store):
    out = factory("sql", "SELECT count(*) AS n FROM responses", "--format", "json", store=filled_store).stdout
    assert json.loads(out) == {"n": 8}
    csv = factory("datasets", "--format", "csv", store=filled_store).stdout
    # dataset,rows,files,version: version 0 is the empty table; 4 prompts in batches of 2 are 2
    # commits (versions 1, 2), then the run compacts the 2 files into 1 (version 3); the seeds are one commit.
    assert "responses,8,1,3," in csv and "prompts,4,1,1," in csv


def test_writes_through_sql_are_refused(filled_store):
    result = factory("sql", "DELETE FROM responses", store=filled_store, check=False)
    assert_user_error(result, "refused", "DELETE")
    assert json.loads(factory("sql", "SELECT count(*) AS n FROM responses", "--format", "json",
                              store=filled_store).stdout) == {"n": 8}


def test_invalid_sql(filled_store):
    assert_user_error(factory("sql", "SELECT FROM WHERE", store=filled_store, check=False), "SQL")


def test_export_round_trip(filled_store, tmp_path):
    out = tmp_path / "raw"
    factory("export", "responses", "--out", str(out), "--where", "sample_index = 0", store=filled_store)
    from_disk = datasets.load_from_disk(str(out))
    from_parquet = datasets.load_dataset("parquet", data_files=str(out / "data" / "*.parquet"), split="train")
    assert from_disk.num_rows == from_parquet.num_rows == 4
    assert set(from_disk["sample_index"]) == {0}
    assert sorted(from_disk["id"]) == sorted(from_parquet["id"])
    card = (out / "README.md").read_text()
    assert "## Pipelines\n- `test`" in card and "tiny-llama" in card and from_disk[0]["run_id"] in card

    sft = tmp_path / "sft"
    factory("export", "responses", "--out", str(sft), "--format", "sft", store=filled_store)
    messages = datasets.load_from_disk(str(sft))[0]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]

    again = factory("export", "responses", "--out", str(sft), store=filled_store, check=False)
    assert_user_error(again, "not empty", "--overwrite")


def test_export_unknown_dataset(filled_store, tmp_path):
    result = factory("export", "nothing", "--out", str(tmp_path / "x"), store=filled_store, check=False)
    assert_user_error(result, "no data set 'nothing'")


def test_models_lists_the_bundled_models():
    out = factory("models", "--format", "csv").stdout
    assert "smollm2-135m-instruct,causal-lm" in out and "minilm-l6,embedding" in out


@pytest.mark.parametrize("mutate, fragments", [
    (lambda raw: raw["stages"][0].update(model="gpt-9"), ["stages[0].model", "unknown model 'gpt-9'"]),
    (lambda raw: raw["stages"][0].update(stage="nope"), ["stages[0].stage", "unknown stage 'nope'"]),
    (lambda raw: raw["models"]["m"].update(name="smollm3"), ["models.m.name", "unknown model 'smollm3'"]),
])
def test_bad_pipelines_exit_2_without_touching_the_store(filled_store, tmp_path, mutate, fragments):
    before = Store(filled_store).sql("SELECT count(*) AS n FROM responses")["n"][0]
    raw = generate_pipeline("org/m")
    mutate(raw)
    path = write_pipeline(tmp_path, raw, prompts(2))
    assert_user_error(factory("run", str(path), store=filled_store, check=False), *fragments)
    assert Store(filled_store).sql("SELECT count(*) AS n FROM responses")["n"][0] == before


def test_malformed_yaml(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: [unclosed\n")
    assert_user_error(factory("run", str(path), store=tmp_path / "s", check=False), "p.yaml:", "malformed YAML")


def test_broken_seed_line_writes_nothing(tmp_path):
    path = write_pipeline(tmp_path, generate_pipeline("org/m"), prompts(2))
    with (tmp_path / "prompts.jsonl").open("a") as handle:
        handle.write("{not json}\n")
    result = factory("run", str(path), store=tmp_path / "store", check=False)
    assert_user_error(result, "prompts.jsonl:3", "invalid JSON")
    assert not (tmp_path / "store" / "prompts").exists()


def test_unwritable_store(tmp_path):
    (tmp_path / "file").write_text("x")
    path = write_pipeline(tmp_path, generate_pipeline("org/m"), prompts(1))
    assert_user_error(factory("run", str(path), store=tmp_path / "file" / "store", check=False), "not writable")


def test_store_from_environment(filled_store):
    import os

    env = dict(os.environ, FACTORY_STORE=str(filled_store))
    result = subprocess.run([sys.executable, "-m", "factory.cli", "sql", "SELECT 1 AS one FROM prompts LIMIT 1",
                             "--format", "csv"], capture_output=True, text=True, env=env, timeout=120)
    assert result.stdout.splitlines() == ["one", "1"]


def test_sql_as_of_a_run_a_version_and_a_data_set(tmp_path, tiny_model_dir):
    store = tmp_path / "store"
    path = write_pipeline(tmp_path, generate_pipeline(str(tiny_model_dir), n=1), prompts(2))
    factory("run", str(path), "--executor", "local", store=store)
    first_run = Store(store).sql("SELECT run_id FROM runs")["run_id"][0]
    write_pipeline(tmp_path, generate_pipeline(str(tiny_model_dir), n=1), prompts(5))
    factory("run", str(path), "--executor", "local", store=store)

    def rows(*extra):
        out = factory("sql", "SELECT count(*) AS n FROM responses", "--format", "csv", *extra, store=store).stdout
        return int(out.splitlines()[1])

    assert rows() == 5
    assert rows("--as-of", first_run) == 2  # the versions the first run read and left
    assert rows("--as-of", "responses=1") == 2  # version 1: the first commit, one batch of 2 prompts
    assert rows("--as-of", "0") == 0  # every data set at version 0: the empty table
    assert_user_error(factory("sql", "SELECT 1", "--as-of", "no-such-run", store=store, check=False),
                      "no training run, run or stage run")
    assert_user_error(factory("sql", "SELECT * FROM responses", "--as-of", "responses=999", store=store,
                              check=False), "version")


def test_compact_vacuum_and_migrate_commands(tmp_path):
    from tests.factory.test_store import table

    store = Store(tmp_path / "store")
    for i in range(5):
        store.append("d", table([f"r{i}"]))
    assert "d: 5 files compacted into 1" in factory("compact", store=tmp_path / "store").stdout
    assert "d: removed 5 files" in factory("vacuum", "--retention-hours", "0", store=tmp_path / "store").stdout
    assert "nothing to migrate" in factory("migrate", store=tmp_path / "store").stdout
    assert_user_error(factory("compact", "nope", store=tmp_path / "store", check=False), "no data set 'nope'")


def test_hostile_sql_through_the_cli(filled_store, tmp_path):
    target = next((filled_store / "responses").glob("*.parquet"))
    attack = f"EXPLAIN ANALYZE COPY (SELECT * FROM responses) TO '{target}' (FORMAT parquet)"
    assert_user_error(factory("sql", attack, store=filled_store, check=False), "refused", "EXPLAIN COPY")
    assert_user_error(factory("sql", "SELECT * FROM read_text('/proc/self/environ')", store=filled_store,
                              check=False), "file system operations are disabled")
    assert_user_error(factory("sql", "SELECT CAST(prompt AS INTEGER) FROM responses", store=filled_store,
                              check=False), "SQL error: Conversion Error")

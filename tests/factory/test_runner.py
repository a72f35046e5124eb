import pytest

from factory import seeds
from factory.config import load_pipeline
from factory.inputs import StageInput
from factory.runner import PipelineRunner
from factory.store import Store
from tests.helpers import generate_pipeline, prompts, write_pipeline


SEEDS = "SELECT count(*) AS n, count(DISTINCT id) AS u FROM prompts"


def run(path, store, **kwargs):
    return PipelineRunner(load_pipeline(path), store, **kwargs).run()


def count(store, query="SELECT count(*) AS n, count(DISTINCT id) AS u FROM responses"):
    return store.sql(query).row(0)


def test_local_run_then_rerun_does_nothing(tmp_path, tiny_model_dir):
    path = write_pipeline(tmp_path, generate_pipeline(str(tiny_model_dir)), prompts(5))
    store = Store(tmp_path / "store")
    (first,) = run(path, store)
    assert (first.rows, first.input_rows, first.skipped_rows) == (10, 5, 0)
    assert first.completion_tokens > 0 and first.prompt_tokens > 0
    (second,) = run(path, store)
    assert (second.rows, second.skipped_rows) == (0, 5)
    assert count(store) == (10, 10)
    assert store.sql("SELECT count(*) AS n FROM prompts")["n"][0] == 5  # seeds loaded once
    runs = store.sql("SELECT status, rows, skipped_rows FROM runs ORDER BY started_at").rows()
    assert runs == [("completed", 10, 0), ("completed", 0, 5)]
    # Accounting: the engine's own counts of every call reach the run summary.
    tokens = store.sql("SELECT sum(completion_tokens) AS c FROM responses")["c"][0]
    assert first.completion_tokens == tokens
    (engine_seconds,) = store.sql("SELECT engine_seconds FROM runs ORDER BY started_at LIMIT 1")["engine_seconds"]
    assert 0 < engine_seconds <= first.seconds
    import pyarrow.parquet as pq

    for path in store.files("responses"):  # the usage rides on the batch, not into the data set
        assert b"factory.usage" not in (pq.read_schema(path).metadata or {})


def test_limit_then_full_run_completes_the_rest(tmp_path, tiny_model_dir):
    path = write_pipeline(tmp_path, generate_pipeline(str(tiny_model_dir), n=1), prompts(6))
    store = Store(tmp_path / "store")
    run(path, store, limit=2)
    assert count(store) == (2, 2)
    assert count(store, SEEDS) == (2, 2)  # --limit reads, validates and loads only the rows it uses
    (summary,) = run(path, store)
    assert (summary.rows, summary.skipped_rows) == (4, 2)
    assert count(store, SEEDS) == (6, 6)
    assert count(store, "SELECT count(DISTINCT parent_id) AS n, count(*) AS m FROM responses") == (6, 6)


def test_changed_config_makes_new_rows_beside_the_old(tmp_path, tiny_model_dir):
    store = Store(tmp_path / "store")
    run(write_pipeline(tmp_path, generate_pipeline(str(tiny_model_dir), n=1), prompts(3)), store)
    run(write_pipeline(tmp_path, generate_pipeline(str(tiny_model_dir), n=2), prompts(3)), store)
    assert count(store, "SELECT count(DISTINCT fingerprint) AS f, count(*) AS n FROM responses") == (2, 9)


def test_two_stage_pipeline_reads_the_earlier_output(tmp_path, tiny_model_dir):
    raw = generate_pipeline(str(tiny_model_dir), n=1)
    raw["stages"].append({
        "stage": "generate", "name": "follow_up", "input": {"dataset": "responses", "where": "error IS NULL"},
        "output": "follow_ups", "model": "m", "config": {"prompt_column": "response", "max_new_tokens": 4},
    })
    store = Store(tmp_path / "store")
    summaries = run(write_pipeline(tmp_path, raw, prompts(3)), store)
    assert [s.rows for s in summaries] == [3, 3]
    lineage = store.sql("SELECT count(*) AS n FROM follow_ups f JOIN responses r ON f.parent_id = r.id")
    assert lineage["n"][0] == 3


def test_over_long_prompt_is_an_error_row_not_a_failed_batch(tmp_path, tiny_model_dir):
    rows = prompts(3) + [{"id": "long", "prompt": "the quick brown fox " * 300}]
    store = Store(tmp_path / "store")
    (summary,) = run(write_pipeline(tmp_path, generate_pipeline(str(tiny_model_dir), n=1, batch_size=4), rows), store)
    assert (summary.rows, summary.error_rows) == (4, 1)
    (error,) = store.sql("SELECT error FROM responses WHERE parent_id = 'long'")["error"]
    assert "PromptTooLongError" in error


@pytest.mark.slow
def test_ray_executor_matches_local(tmp_path, tiny_model_dir):
    path = write_pipeline(tmp_path, generate_pipeline(str(tiny_model_dir), executor="ray", max_new_tokens=4),
                          prompts(6))
    ray_store, local_store = Store(tmp_path / "ray"), Store(tmp_path / "local")
    (on_ray,) = run(path, ray_store)
    (local,) = run(path, local_store, executor="local")
    assert on_ray.rows == local.rows == 12
    query = "SELECT id, parent_id, sample_index, response FROM responses ORDER BY id"
    # Same ids and the same text: batches are seeded by their content, not by where they ran.
    assert ray_store.sql(query).equals(local_store.sql(query))
    from deltalake import DeltaTable

    operations = [entry["operation"] for entry in DeltaTable(ray_store.uri("responses")).history()]
    assert operations.count("WRITE") == 3  # one commit per batch
    assert operations[0] == "OPTIMIZE" and len(ray_store.files("responses")) == 1  # compacted when the run ended


def test_count_input_and_prepare_input_hook(tmp_path):
    raw = {"name": "groups", "executor": "local", "stages": [{
        "stage": "tests.factory.stage_fixtures:GroupStage", "input": {"count": 5}, "config": {"groups": 2},
    }]}
    store = Store(tmp_path / "store")
    path = write_pipeline(tmp_path, raw)
    (summary,) = run(path, store)
    assert summary.rows == 2
    rows = store.sql("SELECT parent_id, members FROM groups ORDER BY parent_id").rows()
    assert rows == [("g0", ["0", "2", "4"]), ("g1", ["1", "3"])]
    assert run(path, store)[0].skipped_rows == 2


# ---- seeds in chunks (issue 16, item 4) ---------------------------------------------------------

def test_seeds_load_and_reach_the_stage_chunk_by_chunk(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(seeds, "SEED_CHUNK_ROWS", 2)
    path = write_pipeline(tmp_path, generate_pipeline(str(tiny_model_dir), n=1), prompts(5))
    store = Store(tmp_path / "store")
    runner = PipelineRunner(load_pipeline(path), store)
    runner.check()
    (stage,) = runner.pipeline.stages
    source = StageInput(stage, runner.pipeline, store, runner._seeds[stage.index], None)
    assert [chunk.num_rows for chunk in source.rounds(True)] == [2, 2, 1]  # never the whole file
    (summary,) = runner.run()
    assert (summary.rows, summary.input_rows, summary.skipped_rows) == (5, 5, 0)
    assert count(store, SEEDS) == (5, 5)
    ids = store.sql("SELECT id FROM prompts ORDER BY source_line")["id"].to_list()
    assert ids == [f"p{i}" for i in range(5)]
    (again,) = run(path, store)  # a re-run adds no seed and no row
    assert (again.rows, again.input_rows, again.skipped_rows) == (0, 5, 5)
    assert count(store, SEEDS) == (5, 5) and count(store) == (5, 5)


def test_a_bad_line_in_chunk_three_fails_the_run_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(seeds, "SEED_CHUNK_ROWS", 2)
    path = write_pipeline(tmp_path, generate_pipeline("org/m"), prompts(4))
    with (tmp_path / "prompts.jsonl").open("a") as handle:
        handle.write('{"prompt": "fine"}\n{"prompt": 5}\n')  # line 6, in the third chunk
    store = Store(tmp_path / "store")
    with pytest.raises(seeds.SeedFileError, match=r"prompts\.jsonl:6: field 'prompt'"):
        PipelineRunner(load_pipeline(path), store).run()
    assert store.datasets() == []  # no seed chunk, no run record: nothing half-loaded


def test_a_seed_load_stopped_part_way_is_completed_by_the_next_run(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(seeds, "SEED_CHUNK_ROWS", 2)
    path = write_pipeline(tmp_path, generate_pipeline(str(tiny_model_dir), n=1), prompts(5))
    store = Store(tmp_path / "store")
    first_chunk = next(seeds.read_seed_chunks(seeds.scan_seed_file(tmp_path / "prompts.jsonl")))
    store.append("prompts", first_chunk)  # as a run killed after its first seed commit left it
    (summary,) = run(path, store)
    assert summary.rows == 5 and count(store, SEEDS) == (5, 5)


def test_a_grouping_stage_reading_seeds_gets_every_row_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(seeds, "SEED_CHUNK_ROWS", 2)
    raw = {"name": "groups", "executor": "local", "stages": [{
        "stage": "tests.factory.stage_fixtures:GroupStage", "input": {"seed": "prompts.jsonl"}, "config": {"groups": 2},
    }]}
    path = write_pipeline(tmp_path, raw, [{"id": f"s{i}", "prompt": "p", "index": i} for i in range(5)])
    store = Store(tmp_path / "store")
    (summary,) = run(path, store)
    rows = store.sql("SELECT parent_id, members FROM groups ORDER BY parent_id").rows()
    assert rows == [("g0", ["s0", "s2", "s4"]), ("g1", ["s1", "s3"])]
    assert count(store, SEEDS) == (5, 5)

"""What a stage reads round after round (factory/inputs.py): each commit once, whole groups only
while the upstream runs, every item offered once per run, `--limit` over the whole run."""

from __future__ import annotations

import pyarrow as pa

from factory.config import load_pipeline
from factory.inputs import StageInput
from factory.store import Store
from tests.helpers import write_pipeline

UPSTREAM = "upstream-fingerprint"


def planned(tmp_path, stage: str, **spec):
    raw = {"name": "inputs", "executor": "local", "stages": [
        {"stage": f"tests.factory.stage_fixtures:{stage}", "input": {"dataset": "responses"}, **spec}]}
    return load_pipeline(write_pipeline(tmp_path, raw, []))


def commit(store: Store, parent: str, count: int, fingerprint: str = UPSTREAM) -> None:
    ids = [f"{parent}-{fingerprint[:3]}-{i}" for i in range(count)]
    store.append("responses", pa.table({"id": ids, "parent_id": [parent] * count, "fingerprint": [fingerprint] * count}))


def ids(source: StageInput, upstream_finished: bool) -> list[str]:
    return sorted(i for table in source.rounds(upstream_finished) for i in table.column("id").to_pylist())


def test_a_group_is_offered_once_its_parent_is_committed_and_never_twice(tmp_path):
    store = Store(tmp_path / "store")
    pipeline = planned(tmp_path, "ParentGroupStage")
    source = StageInput(pipeline.stages[0], pipeline, store, None, None, parent_fingerprints=[UPSTREAM])
    commit(store, "a", 2)
    commit(store, "old", 1, fingerprint="an-earlier-run")  # another fingerprint: its group may still grow
    assert ids(source, upstream_finished=False) == ["a"]
    commit(store, "b", 3)
    assert ids(source, upstream_finished=False) == ["b"]  # only the parent committed since
    assert ids(source, upstream_finished=False) == []
    store.compact("responses")  # rewritten files hold the same rows: nothing is offered again
    commit(store, "old", 2)  # the upstream's own rows for `old` join the earlier run's
    members = {row["id"]: row["members"] for t in source.rounds(False) for row in t.to_pylist()}
    assert members == {"old": ["old-an--0", "old-ups-0", "old-ups-1"]}
    assert ids(source, upstream_finished=True) == []  # everything was offered already
    assert source.offered == 3


def test_rows_are_read_once_per_commit_and_the_limit_counts_the_whole_run(tmp_path):
    store = Store(tmp_path / "store")
    pipeline = planned(tmp_path, "EchoStage")
    source = StageInput(pipeline.stages[0], pipeline, store, None, limit=4)
    commit(store, "a", 3)
    assert ids(source, False) == ["a-ups-0", "a-ups-1", "a-ups-2"]
    commit(store, "b", 3)
    store.compact("responses")
    assert ids(source, False) == ["b-ups-0"]  # 4 in all, and a's rows, rewritten, are not offered again
    commit(store, "c", 1)
    assert ids(source, True) == [] and source.offered == 4

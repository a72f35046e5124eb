import threading

import pyarrow as pa
import pytest

from factory.errors import StoreError
from factory.ids import row_id, stable_hash
from factory.store import Store


def table(ids, parents=None):
    return pa.table({"id": ids, "parent_id": parents or [f"p-{i}" for i in ids], "value": list(range(len(ids)))})


def test_append_then_query_and_list(tmp_path):
    store = Store(tmp_path / "store")
    store.append("responses", table(["a", "b"]))
    store.append("responses", table(["c"]))
    assert store.sql("SELECT id FROM responses ORDER BY id")["id"].to_list() == ["a", "b", "c"]
    (info,) = store.datasets()
    assert (info.name, info.rows, info.shards) == ("responses", 3, 2)
    assert list(info.columns) == ["id", "parent_id", "value"]


def test_empty_append_writes_nothing(tmp_path):
    store = Store(tmp_path)
    assert store.append("x", table([])) is None
    assert store.datasets() == []


def test_unfinished_shard_is_invisible(tmp_path):
    store = Store(tmp_path)
    store.append("d", table(["a"]))
    # A writer killed mid-shard leaves only its temporary file behind.
    (tmp_path / "d" / "part-999.parquet.tmp").write_bytes(b"half a parquet file")
    assert store.sql("SELECT count(*) AS n FROM d")["n"][0] == 1


@pytest.mark.parametrize("query", [
    "DROP VIEW d", "INSERT INTO d VALUES ('x', 'y', 1)", "CREATE TABLE t AS SELECT 1",
    "COPY d TO '/tmp/stolen.csv'", "ATTACH 'other.db'", "DELETE FROM d", "UPDATE d SET value = 0",
    "SELECT 1; DROP VIEW d", "INSTALL httpfs", "SET memory_limit = '1GB'",
])
def test_writes_are_refused(tmp_path, query):
    store = Store(tmp_path)
    store.append("d", table(["a"]))
    with pytest.raises(StoreError, match="refused"):
        store.sql(query)
    assert store.sql("SELECT count(*) AS n FROM d")["n"][0] == 1


def test_invalid_sql_is_a_clear_error(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(StoreError, match="invalid SQL"):
        store.sql("SELEC 1")
    with pytest.raises(StoreError, match="nope"):
        store.sql("SELECT * FROM nope")


def test_resume_anti_join(tmp_path):
    store = Store(tmp_path)
    store.append("out", pa.table({"id": ["o1", "o2"], "parent_id": ["a", "b"], "fingerprint": ["f", "g"]}))
    todo = store.without_done("out", table(["a", "b", "c"], parents=["x", "y", "z"]), where="fingerprint = 'f'")
    assert todo.column("id").to_pylist() == ["b", "c"]
    assert store.without_done("missing", table(["a"])).num_rows == 1


def test_reader_works_while_writer_appends(tmp_path):
    store = Store(tmp_path)
    store.append("d", table(["seed"]))
    done = threading.Event()

    def writer():
        for i in range(60):
            store_w = Store(tmp_path)
            store_w.append("d", table([f"w{i}-{j}" for j in range(50)]))
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    counts = []
    reader = Store(tmp_path)
    while not done.is_set():
        counts.append(reader.sql("SELECT count(*) AS n FROM d")["n"][0])
    thread.join()
    assert all((n - 1) % 50 == 0 for n in counts), "a reader saw part of a shard"
    assert reader.sql("SELECT count(*) AS n, count(DISTINCT id) AS u FROM d").row(0) == (3001, 3001)


def test_fsspec_url_store():
    store = Store("memory://bucket/factory-test")
    store.append("d", table(["a", "b"]))
    assert store.sql("SELECT sum(value) AS s FROM d")["s"][0] == 1
    assert [i.name for i in store.datasets()] == ["d"]


def test_store_path_under_a_file_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="not writable"):
        Store(blocker / "store").ensure_writable()


def test_bad_dataset_name(tmp_path):
    with pytest.raises(StoreError, match="invalid data set name"):
        Store(tmp_path).append("drop table;", table(["a"]))


def test_ids_are_deterministic_and_distinct():
    assert row_id("f", "a", 0) == row_id("f", "a", 0)
    assert len({row_id("f", "a", 0), row_id("f", "a", 1), row_id("g", "a", 0), row_id("f", "b", 0)}) == 4
    assert stable_hash("ab", "c") != stable_hash("a", "bc")


def test_a_batch_with_other_columns_is_refused_and_nothing_is_written(tmp_path):
    store = Store(tmp_path)
    store.append("d", table(["a"]))
    with pytest.raises(StoreError, match=r"has columns \['id', 'parent_id', 'value'\]"):
        store.append("d", pa.table({"id": ["b"], "other": [1]}))
    fresh = Store(tmp_path)  # a new writer reads the schema from the shards
    fresh.append("d", pa.table({"id": ["c"], "parent_id": [None], "value": [None]}))  # null columns are cast
    assert fresh.sql("SELECT count(*) AS n FROM d")["n"][0] == 2

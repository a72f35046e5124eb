import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factory.errors import StoreError
from factory.ids import row_id, stable_hash
from factory.store import Store


def table(ids, parents=None):
    return pa.table({"id": ids, "parent_id": parents or [f"p-{i}" for i in ids], "value": list(range(len(ids)))})


def count(store, dataset="d"):
    return store.sql(f"SELECT count(*) AS n, count(DISTINCT id) AS u FROM {dataset}").row(0)


def test_append_then_query_and_list(tmp_path):
    store = Store(tmp_path / "store")
    assert store.append("responses", table(["a", "b"])) == 1  # version 0 is the empty table
    assert store.append("responses", table(["c"])) == 2
    assert store.sql("SELECT id FROM responses ORDER BY id")["id"].to_list() == ["a", "b", "c"]
    (info,) = store.datasets()
    assert (info.name, info.rows, info.files, info.version) == ("responses", 3, 2, 2)
    assert list(info.columns) == ["id", "parent_id", "value"]
    assert (tmp_path / "store" / "responses" / "_delta_log").is_dir()


def test_empty_append_writes_nothing(tmp_path):
    store = Store(tmp_path)
    assert store.append("x", table([])) is None
    assert store.datasets() == []


def test_files_not_in_the_log_are_invisible(tmp_path):
    store = Store(tmp_path)
    store.append("d", table(["a"]))
    # A writer killed before its commit leaves a data file no version names; a stray copy likewise.
    pq.write_table(table(["x", "y"]), tmp_path / "d" / "part-99999-stray.parquet")
    assert count(store) == (1, 1)


def test_params_and_quoted_identifiers(tmp_path):
    store = Store(tmp_path)
    store.append("d", table(["a", "b'; DROP TABLE d; --"]))
    hostile = "b'; DROP TABLE d; --"
    assert store.sql("SELECT value FROM d WHERE id = ?", [hostile])["value"].to_list() == [1]


def test_invalid_sql_is_a_clear_error(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(StoreError, match="invalid SQL"):
        store.sql("SELEC 1")
    with pytest.raises(StoreError, match="nope"):
        store.sql("SELECT * FROM nope")


def test_runtime_sql_error_is_one_line(tmp_path):
    store = Store(tmp_path)
    store.append("d", table(["a"]))
    with pytest.raises(StoreError) as caught:
        store.sql("SELECT CAST(id AS INTEGER) FROM d")
    assert str(caught.value).startswith("SQL error: Conversion Error") and "\n" not in str(caught.value)


def test_resume_anti_join(tmp_path):
    store = Store(tmp_path)
    store.append("out", pa.table({"id": ["o1", "o2"], "parent_id": ["a", "b"], "fingerprint": ["f", "g"]}))
    todo = store.without_done("out", table(["a", "b", "c"], parents=["x", "y", "z"]), where="fingerprint = ?",
                              params=["f"])
    assert todo.column("id").to_pylist() == ["b", "c"]
    assert store.without_done("missing", table(["a"])).num_rows == 1


def test_reader_works_while_writer_appends_and_compacts(tmp_path):
    store = Store(tmp_path)
    store.append("d", table(["seed"]))
    done = threading.Event()
    failures = []

    def writer():
        try:
            writer_store = Store(tmp_path)
            for i in range(40):
                writer_store.append("d", table([f"w{i}-{j}" for j in range(50)]))
                if i % 10 == 9:
                    writer_store.compact("d")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    counts = []
    reader = Store(tmp_path)
    while not done.is_set():
        counts.append(count(reader))
    thread.join()
    assert not failures
    assert counts and all(n == u and (n - 1) % 50 == 0 for n, u in counts), "a reader saw part of a commit"
    assert count(reader) == (2001, 2001)


def test_replace_is_one_commit(tmp_path):
    store = Store(tmp_path)
    store.append("d", table(["a", "b"]))
    before = store.version("d")
    version = store.replace("d", pa.table({"id": ["a"], "parent_id": ["new"], "value": [10]}))
    assert version == before + 1
    assert store.sql("SELECT id, parent_id FROM d ORDER BY id").rows() == [("a", "new"), ("b", "p-b")]
    # the old row is still readable as of the version before
    assert store.sql("SELECT parent_id FROM d WHERE id = 'a'", as_of=before)["parent_id"].to_list() == ["p-a"]


def test_a_failed_replace_keeps_the_old_rows(tmp_path):
    store = Store(tmp_path)
    store.append("d", table(["a"]))
    with pytest.raises(StoreError, match="columns"):
        store.replace("d", pa.table({"id": ["a"], "other": [1]}))
    with pytest.raises(StoreError, match="column types"):
        store.replace("d", pa.table({"id": ["a"], "parent_id": ["x"], "value": ["not a number"]}))
    assert store.sql("SELECT parent_id FROM d").rows() == [("p-a",)]


def test_delete_by_id(tmp_path):
    store = Store(tmp_path)
    store.append("d", table(["a", "b", "c"]))
    assert store.delete("d", ["a", "c", "zz"]) == 2
    assert store.sql("SELECT id FROM d").rows() == [("b",)]
    assert store.delete("d", ["b"]) == 1
    assert count(store) == (0, 0)  # an emptied table is still a table


def test_concurrent_writers_never_store_an_id_twice(tmp_path):
    first, second = Store(tmp_path), Store(tmp_path)
    first.append("d", table(["a"]))
    inputs = table(["x", "y", "z"], parents=["x", "y", "z"])
    todo_1 = first.without_done("d", inputs, against="id")
    todo_2 = second.without_done("d", inputs, against="id")
    assert todo_1.num_rows == todo_2.num_rows == 3  # both think everything is missing
    first.append("d", todo_1.slice(0, 2))
    second.append("d", todo_2)  # its commit conflicts; only "z" is new by then
    first.append("d", todo_1.slice(2))
    assert count(Store(tmp_path)) == (4, 4)


def test_compaction_keeps_rows_and_versions(tmp_path):
    store = Store(tmp_path)
    for i in range(20):
        store.append("d", table([f"r{i}"]))
    old = store.version("d")
    metrics = store.compact("d")
    assert metrics["numFilesRemoved"] == 20 and metrics["numFilesAdded"] == 1
    (info,) = store.datasets()
    assert (info.rows, info.files) == (20, 1)
    assert count(store) == (20, 20)
    assert store.sql("SELECT count(*) AS n FROM d", as_of={"d": old})["n"][0] == 20  # old files kept
    assert store.vacuum("d", retention_hours=0)  # removed the 20 small files
    assert count(store) == (20, 20)


def test_automatic_compaction_bounds_the_file_count(tmp_path, monkeypatch):
    import factory.store as store_module

    monkeypatch.setattr(store_module, "AUTO_COMPACT_EVERY", 5)
    monkeypatch.setattr(store_module, "AUTO_COMPACT_FILES", 8)
    store = Store(tmp_path)
    for i in range(40):
        store.append("d", table([f"r{i}"]))
    assert store.datasets()[0].files <= 13
    assert count(store) == (40, 40)


def test_object_store_urls_need_delta_support(tmp_path):
    with pytest.raises(StoreError, match="invalid data set name"):
        Store(tmp_path).append("drop table;", table(["a"]))


def test_store_path_under_a_file_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="not writable"):
        Store(blocker / "store").ensure_writable()


@pytest.mark.parametrize("name", ["order", "select", "Runs", "a-b", "1x", "../outside", "a/b", "", "x" * 64])
def test_bad_dataset_names(tmp_path, name):
    with pytest.raises(StoreError, match="invalid data set name"):
        Store(tmp_path).append(name, table(["a"]))
    assert not any(tmp_path.iterdir()), "nothing may be written for a refused name"


def test_ids_are_deterministic_and_distinct():
    assert row_id("f", "a", 0) == row_id("f", "a", 0)
    assert len({row_id("f", "a", 0), row_id("f", "a", 1), row_id("g", "a", 0), row_id("f", "b", 0)}) == 4
    assert stable_hash("ab", "c") != stable_hash("a", "bc")


def test_a_batch_with_other_columns_is_refused_and_nothing_is_written(tmp_path):
    store = Store(tmp_path)
    store.append("d", table(["a"]))
    with pytest.raises(StoreError, match=r"has columns \['id', 'parent_id', 'value'\]"):
        store.append("d", pa.table({"id": ["b"], "other": [1]}))
    fresh = Store(tmp_path)  # a new writer reads the schema from the table
    fresh.append("d", pa.table({"id": ["c"], "parent_id": [None], "value": [None]}))  # null columns are cast
    assert count(fresh) == (2, 2)


def test_first_batch_with_an_all_null_column(tmp_path):
    store = Store(tmp_path)
    store.append("d", pa.table({"id": ["a"], "note": pa.array([None], pa.null())}))
    store.append("d", pa.table({"id": ["b"], "note": ["text"]}))
    assert store.sql("SELECT note FROM d ORDER BY id")["note"].to_list() == [None, "text"]


def test_a_record_type_that_gained_a_column(tmp_path):
    store = Store(tmp_path)
    store.append("runs", pa.table({"id": ["a"], "value": [1]}))
    store.append("runs", pa.table({"id": ["b"], "value": [2], "versions": ['{"d": 3}']}))
    assert store.sql("SELECT id, versions FROM runs ORDER BY id").rows() == [("a", None), ("b", '{"d": 3}')]
    assert Store(tmp_path).datasets()[0].columns == {"id": "VARCHAR", "value": "BIGINT", "versions": "VARCHAR"}


def write_legacy_store(root):
    """A store as the landed (pre-Delta) version left it: shard folders, one unfinished shard."""
    for name, shards in (("responses", 3), ("runs", 1)):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(shards):
            pq.write_table(table([f"{name}-{i}-{j}" for j in range(4)]), folder / f"part-{i:020d}-abcd{i}.parquet")
    (root / "responses" / "part-99999999999999999999-dead.parquet.tmp").write_bytes(b"half a shard")
    (root / ".locks").mkdir()


def test_migrate_a_store_written_before_delta(tmp_path):
    write_legacy_store(tmp_path)
    store = Store(tmp_path)
    assert store.legacy_datasets() == ["responses", "runs"]
    with pytest.raises(StoreError, match="factory migrate"):
        store.sql("SELECT count(*) FROM responses")
    with pytest.raises(StoreError, match="factory migrate"):  # nothing is written next to the old shards
        store.append("responses", table(["new"]))
    assert store.migrate() == ["responses", "runs"]
    assert Store(tmp_path).migrate() == []  # idempotent
    migrated = Store(tmp_path)
    assert count(migrated, "responses") == (12, 12) and count(migrated, "runs") == (4, 4)
    migrated.append("responses", table(["new"]))
    assert count(migrated, "responses") == (13, 13)
    assert not list((tmp_path / "responses").glob("*.tmp"))


def test_readers_never_fail_while_another_writer_replaces_and_compacts(tmp_path):
    """The rating app's pattern: answers replaced over and over while the overview reads them."""
    Store(tmp_path).append("d", table([f"r{i}" for i in range(10)]))
    done, failures, counts = threading.Event(), [], []

    def writer():
        try:
            store = Store(tmp_path)
            for round_ in range(30):
                store.replace("d", pa.table({"id": [f"r{round_ % 10}"], "parent_id": ["changed"], "value": [round_]}))
                if round_ % 10 == 9:
                    Store(tmp_path).compact("d")  # another process's compaction
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reader = Store(tmp_path)
    while not done.is_set():
        counts.append(count(reader))
    thread.join()
    assert not failures and counts and set(counts) == {(10, 10)}
    assert not list(tmp_path.rglob("*.tmp"))


def test_rows_without_ids_are_appended_as_they_are(tmp_path):
    first, second = Store(tmp_path), Store(tmp_path)
    first.append("notes", pa.table({"text": ["a"]}))
    second.append("notes", pa.table({"text": ["a"]}))
    first.append("notes", pa.table({"text": ["b"]}))  # conflicts with second's commit, then lands
    assert first.sql("SELECT text FROM notes ORDER BY text")["text"].to_list() == ["a", "a", "b"]

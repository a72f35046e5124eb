"""The SQL gate as an attacker meets it: no statement, however wrapped, writes, changes state or
reads outside the store; one damaged file breaks only its own data set."""

import os

import pyarrow as pa
import pytest

from factory.errors import StoreError
from factory.store import Store

SECRET = "gate-test-secret-4711"


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_GATE_SECRET", SECRET)
    store = Store(tmp_path / "store")
    store.append("runs", pa.table({"id": ["r1", "r2"], "value": [1, 2]}))
    store.append("ratings", pa.table({"id": ["a"], "score": [3.0]}))
    return store


def snapshot(root):
    return sorted((path, os.path.getsize(os.path.join(path, name)), name)
                  for path, _, names in os.walk(root) for name in names)


def attacks(root, outside):
    data_file = next(str(p) for p in (root / "runs").glob("*.parquet"))
    return [
        f"EXPLAIN ANALYZE COPY (SELECT * FROM runs) TO '{root}/runs/part-99999-x.parquet' (FORMAT parquet)",
        f"EXPLAIN ANALYZE COPY (SELECT * FROM ratings) TO '{data_file}' (FORMAT parquet)",
        f"explain analyse copy (select 1) to '{outside}/stolen.csv'",
        f"/* hidden */ EXPLAIN ANALYZE COPY (SELECT 1) TO '{outside}/stolen.csv'",
        f"COPY runs TO '{outside}/stolen.csv'",
        f"COPY (SELECT * FROM read_text('/etc/passwd')) TO '{outside}/passwd.csv'",
        "EXPLAIN ANALYZE CREATE OR REPLACE TEMP VIEW runs AS SELECT 42 AS id",
        "CREATE OR REPLACE TEMP VIEW runs AS SELECT 42 AS id",
        "EXPLAIN ANALYZE CREATE MACRO count_star() AS 1",
        "CREATE OR REPLACE MACRO lower(x) AS 'pwned'",
        "EXPLAIN ANALYZE SET enable_external_access = true",
        "SET enable_external_access = true",
        "RESET lock_configuration",
        "SELECT * FROM read_text('/proc/self/environ')",
        "SELECT * FROM read_blob('/proc/self/environ')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM sniff_csv('/etc/passwd')",
        f"SELECT * FROM glob('{outside}/*')",
        "SELECT * FROM read_parquet('https://example.com/x.parquet')",
        "SELECT * FROM query('SELECT * FROM read_text(''/proc/self/environ'')')",
        "SELECT * FROM query_table('runs')",
        "WITH x AS (SELECT 1) SELECT * FROM read_text('/proc/self/environ')",
        "PIVOT (SELECT * FROM read_text('/proc/self/environ')) ON filename USING count(*)",
        "INSTALL httpfs", "LOAD httpfs", "ATTACH ':memory:' AS other", "ATTACH '/tmp/x.db' AS other",
        "DETACH memory", "USE memory", "PRAGMA enable_profiling", "CALL pragma_version()",
        "CHECKPOINT", "VACUUM", "EXPORT DATABASE '/tmp/exported'", "IMPORT DATABASE '/tmp/exported'",
        "INSERT INTO runs VALUES ('x', 1)", "DELETE FROM runs", "UPDATE runs SET value = 0", "DROP VIEW runs",
        "SELECT 1; DROP VIEW runs", "SELECT 1; SELECT 2", "CREATE SECRET (TYPE s3, KEY_ID 'x', SECRET 'y')",
        "SELECT current_setting('enable_external_access') AS v",
    ]


def test_no_attack_writes_changes_state_or_reads_outside(store, tmp_path):
    root = tmp_path / "store"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    before = snapshot(root)
    for query in attacks(root, outside):
        try:
            result = store.arrow(query)
        except StoreError as exc:
            assert "\n" not in str(exc), query
            continue
        assert SECRET not in str(result.to_pylist()), query
        assert "root:" not in str(result.to_pylist()), query
    assert snapshot(root) == before, "a statement wrote into the store"
    assert list(outside.iterdir()) == [outside / "secret.txt"], "a statement wrote outside the store"
    assert not os.path.exists("/tmp/exported") and not os.path.exists("/tmp/x.db")
    # the same Store object answers as before: no view, macro or setting was replaced
    assert store.sql("SELECT count(*) AS n, count(DISTINCT id) AS u, lower('A') AS l FROM runs").row(0) == (2, 2, "a")


def test_read_only_statements_stay_expressive(store):
    assert store.sql("EXPLAIN SELECT * FROM runs").height >= 1
    assert store.sql("EXPLAIN ANALYZE SELECT count(*) FROM runs").height >= 1
    assert store.sql("WITH t AS (SELECT * FROM runs) SELECT sum(value) AS s FROM t")["s"][0] == 3
    assert store.sql("PIVOT runs ON id IN ('r1', 'r2') USING sum(value)").row(0) == (1, 2)
    with pytest.raises(StoreError, match="IN list"):  # DuckDB would create a type to find the values
        store.sql("PIVOT runs ON id USING sum(value)")
    assert store.sql("SELECT * FROM query('SELECT 7 AS x')")["x"][0] == 7
    assert store.sql("SUMMARIZE runs").height == 2
    assert store.sql("FROM runs JOIN ratings ON true SELECT count(*) AS n")["n"][0] == 2
    assert store.sql('SELECT count(*) AS n FROM "Runs"')["n"][0] == 2  # identifiers are case-insensitive


def test_a_corrupt_file_breaks_only_its_data_set(store, tmp_path):
    root = tmp_path / "store"
    store.append("ratings", pa.table({"id": ["b"], "score": [4.0]}))
    victim = sorted((root / "ratings").glob("*.parquet"))[-1]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # truncated by a crash or a disk
    with pytest.raises(StoreError) as caught:
        store.sql("SELECT avg(score) FROM ratings")
    message = str(caught.value)
    assert message.startswith("data set 'ratings' cannot be read") and victim.name in message and "\n" not in message
    assert store.sql("SELECT 1 AS one")["one"][0] == 1
    assert store.sql("SELECT sum(value) AS s FROM runs")["s"][0] == 3
    assert [info.name for info in store.datasets()] == ["ratings", "runs"]


def test_a_corrupt_table_log_breaks_only_its_data_set(store, tmp_path):
    store.append("ratings", pa.table({"id": ["b"], "score": [4.0]}))
    log = tmp_path / "store" / "ratings" / "_delta_log" / "00000000000000000001.json"
    log.write_text("{not json")
    fresh = Store(tmp_path / "store")
    with pytest.raises(StoreError, match="data set 'ratings'.*table log"):
        fresh.sql("SELECT * FROM ratings")
    assert fresh.sql("SELECT count(*) AS n FROM runs")["n"][0] == 2
    assert fresh.sql("SELECT count(*) AS n FROM runs WHERE id = ?", ["r1"])["n"][0] == 1  # every data set opened

"""The store on an S3-compatible object store: a real moto server on loopback, started here."""

import os
import subprocess
import sys
import threading

import pyarrow as pa
import pytest
import requests

from factory.errors import StoreError
from factory.store import Store
from tests.helpers import PROBE_TIMEOUT_S, free_port, generate_pipeline, prompts, wait_until_ready, write_pipeline

SECRET = "s3cr3t-key-for-tests"




@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    pytest.importorskip("moto", reason="moto[server] is not installed")
    pytest.importorskip("s3fs", reason="s3fs is not installed")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ACCESS_KEY_ID": "test-id", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_ENDPOINT_URL": endpoint,
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        wait_until_ready(f"the moto S3 server at {endpoint} to answer GET /",
                         lambda: requests.get(endpoint, timeout=PROBE_TIMEOUT_S), process=server)
        import boto3

        boto3.client("s3").create_bucket(Bucket="factory-bucket")
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_append_query_and_resume_on_s3(s3):
    store = Store("s3://factory-bucket/unit")
    store.ensure_writable()
    store.append("d", pa.table({"id": ["a", "b"], "parent_id": ["x", "y"], "v": [1, 2]}))
    reader = Store("s3://factory-bucket/unit")  # another process's view: sees the new shard at once
    assert reader.sql("SELECT sum(v) AS s FROM d")["s"][0] == 3
    store.append("d", pa.table({"id": ["c"], "parent_id": ["z"], "v": [3]}))
    assert reader.sql("SELECT count(*) AS n FROM d")["n"][0] == 3
    assert reader.without_done("d", pa.table({"id": ["x", "q"]})).column("id").to_pylist() == ["q"]
    assert [(i.name, i.rows, i.files, i.version) for i in reader.datasets()] == [("d", 3, 2, 2)]


def test_concurrent_writers_on_s3_never_store_an_id_twice(s3):
    """Commits are conditional PUTs: of two writers that both think an id is missing, one wins and
    the other's retry drops it."""
    url = "s3://factory-bucket/race"
    inputs = pa.table({"id": [f"r{i}" for i in range(40)], "parent_id": [f"p{i}" for i in range(40)]})
    errors = []

    def writer(offset: int) -> None:
        try:
            store = Store(url)
            todo = store.without_done("d", inputs, against="id")
            for start in range(offset, todo.num_rows, 5):  # the two writers walk the rows in another order
                store.append("d", todo.slice(start, 5))
            for start in range(0, offset, 5):
                store.append("d", todo.slice(start, 5))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(offset,)) for offset in (0, 20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert Store(url).sql("SELECT count(*) AS n, count(DISTINCT id) AS u FROM d").row(0) == (40, 40)


def test_two_concurrent_runs_of_one_stage_on_s3(s3, tmp_path, tiny_model_dir):
    url = "s3://factory-bucket/two-runs"
    path = write_pipeline(tmp_path, generate_pipeline(str(tiny_model_dir), n=1, batch_size=1), prompts(6))
    env = dict(os.environ, **s3)
    command = [sys.executable, "-m", "factory.cli", "run", str(path), "--store", url, "--executor", "local"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for _ in range(2)]
    outputs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-2000:] for _, err in outputs]
    store = Store(url)
    assert store.sql("SELECT count(*) AS n, count(DISTINCT id) AS u FROM responses").row(0) == (6, 6)
    assert store.sql("SELECT count(*) AS n, count(DISTINCT id) AS u FROM prompts").row(0) == (6, 6)


def test_pipeline_and_cli_on_s3_never_store_credentials(s3, tmp_path, tiny_model_dir):
    url = "s3://factory-bucket/run"
    path = write_pipeline(tmp_path, generate_pipeline(str(tiny_model_dir)), prompts(3))
    env = dict(os.environ, **s3)
    run = subprocess.run([sys.executable, "-m", "factory.cli", "run", str(path), "--store", url],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    sql = subprocess.run([sys.executable, "-m", "factory.cli", "sql", "SELECT count(*) AS n FROM responses",
                          "--store", url, "--format", "csv"], capture_output=True, text=True, env=env, timeout=120)
    assert sql.stdout.splitlines() == ["n", "6"]
    import s3fs

    fs = s3fs.S3FileSystem()
    for key in fs.find("factory-bucket/run"):
        assert SECRET.encode() not in fs.cat(key), key
    assert SECRET not in run.stdout + run.stderr


def test_missing_bucket_is_one_clear_error(s3):
    with pytest.raises(StoreError, match="not writable"):
        Store("s3://no-such-bucket/x").ensure_writable()

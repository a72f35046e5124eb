import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factory.seeds import SeedFileError, read_seed_file


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_jsonl_with_and_without_ids(tmp_path):
    path = write_lines(tmp_path / "s.jsonl", [
        json.dumps({"id": "a", "prompt": "hi", "topic": "x"}), "", json.dumps({"prompt": "yo", "topic": "y"}),
    ])
    table = read_seed_file(path)
    assert table.column("id").to_pylist()[0] == "a"
    assert len(table.column("id").to_pylist()[1]) == 16  # content hash
    assert table.column("source_line").to_pylist() == [1, 3]
    assert table.column("topic").to_pylist() == ["x", "y"]
    assert read_seed_file(path).equals(table)  # ids are stable across reads


@pytest.mark.parametrize("line, message", [
    ('{"prompt": ', r"s\.jsonl:2: invalid JSON"),
    ('{"text": "no prompt"}', r"s\.jsonl:2: field 'prompt': Field required"),
    ('{"prompt": ""}', r"s\.jsonl:2: field 'prompt': String should have at least 1 character"),
    ('["a list"]', r"s\.jsonl:2: expected a JSON object"),
    ('{"id": "a", "prompt": "dup"}', r"s\.jsonl:2: duplicate id 'a' \(first at line 1\)"),
])
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = write_lines(tmp_path / "s.jsonl", [json.dumps({"id": "a", "prompt": "fine"}), line])
    with pytest.raises(SeedFileError, match=message):
        read_seed_file(path)


def test_parquet_seeds(tmp_path):
    pq.write_table(pa.table({"prompt": ["a", "b"]}), tmp_path / "s.parquet")
    assert read_seed_file(tmp_path / "s.parquet").num_rows == 2
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(SeedFileError, match="not a readable Parquet file"):
        read_seed_file(tmp_path / "bad.parquet")


def test_missing_empty_and_wrong_kind(tmp_path):
    with pytest.raises(SeedFileError, match="seed file not found"):
        read_seed_file(tmp_path / "none.jsonl")
    with pytest.raises(SeedFileError, match="no seed rows"):
        read_seed_file(write_lines(tmp_path / "e.jsonl", [""]))
    with pytest.raises(SeedFileError, match=".jsonl or .parquet"):
        read_seed_file(write_lines(tmp_path / "s.csv", ["prompt", "a"]))

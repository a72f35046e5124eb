import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factory.seeds import SeedFileError, read_seed_chunks, read_seed_file, scan_seed_file


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


# ---- chunked reading (issue 16, item 4): bounded memory, --limit reads only what it needs ----------

def test_chunks_cover_the_file_in_order_with_its_line_numbers(tmp_path):
    lines = [json.dumps({"prompt": f"p{i}", "topic": f"t{i}"}) for i in range(7)]
    path = write_lines(tmp_path / "s.jsonl", lines[:3] + [""] + lines[3:])  # a blank line 4
    scan = scan_seed_file(path, chunk_rows=2)
    chunks = list(read_seed_chunks(scan))
    assert scan.rows == 7 and [chunk.num_rows for chunk in chunks] == [2, 2, 2, 1]
    whole = pa.concat_tables(chunks)
    assert whole.column("source_line").to_pylist() == [1, 2, 3, 5, 6, 7, 8]
    assert whole.column("prompt").to_pylist() == [f"p{i}" for i in range(7)]
    assert whole.equals(read_seed_file(path))  # one chunk or many: the same rows


def test_a_bad_line_in_a_later_chunk_names_its_line(tmp_path):
    lines = [json.dumps({"prompt": f"p{i}"}) for i in range(8)]
    lines[5] = '{"prompt": "half'
    with pytest.raises(SeedFileError, match=r"s\.jsonl:6: invalid JSON"):
        scan_seed_file(write_lines(tmp_path / "s.jsonl", lines), chunk_rows=2)


def test_an_id_repeated_in_another_chunk_names_both_lines(tmp_path):
    lines = [json.dumps({"id": f"x{i}", "prompt": "p"}) for i in range(6)]
    lines[4] = json.dumps({"id": "x1", "prompt": "again"})
    lines[5] = json.dumps({"id": "x0", "prompt": "again"})
    with pytest.raises(SeedFileError, match=r"s\.jsonl:5: duplicate id 'x1' \(first at line 2\)"):
        scan_seed_file(write_lines(tmp_path / "s.jsonl", lines), chunk_rows=2)


def test_extra_fields_keep_one_type_across_chunks(tmp_path):
    # A field absent from the first chunk, and ints then floats: every chunk gets the file's schema.
    path = write_lines(tmp_path / "s.jsonl", [json.dumps({"prompt": "a"}), json.dumps({"prompt": "b"}),
                                              json.dumps({"prompt": "c", "score": 1}),
                                              json.dumps({"prompt": "d", "score": 2.5})])
    scan = scan_seed_file(path, chunk_rows=2)
    chunks = list(read_seed_chunks(scan))
    assert all(chunk.schema.equals(scan.schema) for chunk in chunks)
    assert pa.concat_tables(chunks).column("score").to_pylist() == [None, None, 1.0, 2.5]
    # A field that changes kind between chunks is refused, naming where the chunk starts.
    write_lines(path, [json.dumps({"prompt": "a", "topic": "x"}), json.dumps({"prompt": "b", "topic": "y"}),
                       json.dumps({"prompt": "c", "topic": ["a", "list"]})])
    with pytest.raises(SeedFileError, match=r"s\.jsonl:3: extra fields must keep one type across lines"):
        scan_seed_file(path, chunk_rows=2)


def test_limit_reads_only_the_first_rows(tmp_path):
    lines = [json.dumps({"prompt": f"p{i}"}) for i in range(3)] + ["{broken"]
    path = write_lines(tmp_path / "s.jsonl", lines)
    scan = scan_seed_file(path, limit=2)  # line 4 is never read, so it cannot fail the scan
    assert scan.rows == 2
    assert pa.concat_tables(read_seed_chunks(scan)).column("prompt").to_pylist() == ["p0", "p1"]
    with pytest.raises(SeedFileError, match=r"s\.jsonl:4: invalid JSON"):
        scan_seed_file(path)


def test_parquet_seeds_in_chunks(tmp_path):
    pq.write_table(pa.table({"prompt": [f"p{i}" for i in range(5)], "n": list(range(5))}), tmp_path / "s.parquet",
                   row_group_size=2)
    scan = scan_seed_file(tmp_path / "s.parquet", chunk_rows=2)
    chunks = list(read_seed_chunks(scan))
    assert [chunk.num_rows for chunk in chunks] == [2, 2, 1]
    assert pa.concat_tables(chunks).column("source_line").to_pylist() == [1, 2, 3, 4, 5]
    assert scan_seed_file(tmp_path / "s.parquet", limit=3).rows == 3
    pq.write_table(pa.table({"prompt": ["a", ""]}), tmp_path / "bad.parquet")
    with pytest.raises(SeedFileError, match=r"bad\.parquet: row 2: field 'prompt'"):
        scan_seed_file(tmp_path / "bad.parquet")


def test_a_field_that_first_appears_on_a_later_line_of_a_chunk_is_kept(tmp_path):
    # pyarrow's from_pylist takes the first row's fields only: 'justification' was silently dropped.
    path = write_lines(tmp_path / "s.jsonl", [json.dumps({"prompt": "a"}),
                                              json.dumps({"prompt": "b", "justification": "why"})])
    table = read_seed_file(path)
    assert table.column_names == ["id", "prompt", "system_prompt", "justification", "source_line"]
    assert table.column("justification").to_pylist() == [None, "why"]

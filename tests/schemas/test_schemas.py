import datetime as dt

import pyarrow as pa
import pytest
from pydantic import ValidationError

from schemas import ResponseRow, RunRecord, arrow_schema, rows_to_arrow

COMMON = dict(id="i", parent_id="p", run_id="r", created_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
              stage="s", fingerprint="f")


def test_arrow_schema_types():
    schema = arrow_schema(ResponseRow)
    assert schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("sample_index").type == pa.int64()
    assert schema.field("error").type == pa.string()
    assert arrow_schema(RunRecord).field("seconds").type == pa.float64()


def test_error_row_fits_schema():
    row = ResponseRow(**COMMON, prompt="q", sample_index=0, error="boom")
    table = rows_to_arrow([row], ResponseRow)
    assert table.column("response").to_pylist() == [None]
    assert table.column("error").to_pylist() == ["boom"]


def test_validation_names_the_field():
    with pytest.raises(ValidationError, match="sample_index"):
        ResponseRow(**COMMON, prompt="q", sample_index="first")
    with pytest.raises(ValidationError, match="surprise"):
        ResponseRow(**COMMON, prompt="q", sample_index=0, surprise=1)

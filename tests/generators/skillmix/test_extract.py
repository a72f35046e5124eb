import pyarrow as pa
import pytest

from factory.stage import StageContext
from generators.skillmix.stages.extract import ExtractConfig, ExtractStage
from tests.generators.skillmix.fakes import ScriptedEngine


def stage(engine, **config):
    return ExtractStage(StageContext("extract", ExtractConfig(**config), "run-1", "fp", {"model": engine}))


COUNT = pa.table({"id": ["0", "1"], "index": [0, 1]})


def test_direct_skills_are_parsed_and_normalised():
    engine = ScriptedEngine()
    rows = stage(engine, kind="skills", count=3)(COUNT).to_pylist()
    assert engine.calls == [2]
    assert rows[0]["names"] == ["data_analysis", "creative_writing", "public_speaking"]
    assert rows[0]["kind"] == "skills" and rows[0]["mode"] == "direct" and rows[0]["error"] is None
    assert rows[0]["raw"].startswith("Here are some skills") and rows[0]["template"].startswith("skillmix/v1@")
    assert "List 3 distinct core skills" in engine.conversations[0][0]["content"]


def test_direct_topics_make_one_work_item_per_row_and_topic():
    config = ExtractConfig(kind="query_types", topics=["cooking", "law"])
    table = ExtractStage.prepare_input(config, COUNT, {})
    assert table.num_rows == 4 and len(set(table.column("id").to_pylist())) == 4
    engine = ScriptedEngine()
    rows = stage(engine, kind="query_types", topics=["cooking", "law"])(table).to_pylist()
    assert [r["topic"] for r in rows] == ["cooking", "law", "cooking", "law"]
    assert rows[0]["names"] == ["Information-Seeking", "Help-Seeking"]
    assert rows[0]["definitions"] == ["wants facts", "wants help"]
    assert "users send to AI assistants about cooking" in engine.conversations[0][0]["content"]


def test_dataset_mode_asks_about_each_instruction():
    table = pa.table({"id": ["a", "b"], "instruction": ["Plan my meals for a week", "  "]})
    engine = ScriptedEngine()
    rows = stage(engine, kind="skills", mode="dataset", text_column="instruction", count=1)(table).to_pylist()
    assert rows[0]["names"] == ["cooking"] and rows[0]["source_text"] == "Plan my meals for a week"
    assert "Plan my meals for a week" in engine.conversations[0][0]["content"]
    assert rows[1]["error"].startswith("ValueError: column 'instruction' is empty")
    assert ExtractStage.reads(ExtractConfig(kind="skills", mode="dataset", text_column="instruction")) == ["id", "instruction"]


def test_an_answer_with_no_list_is_an_error_row_with_the_raw_text():
    engine = ScriptedEngine(lambda conversation: ("This is one long sentence and not a list of anything at all.", "stop"))
    (row,) = stage(engine, kind="skills")(COUNT.slice(0, 1)).to_pylist()
    assert row["error"] == "no list items could be parsed from the model's answer" and row["names"] == []
    assert row["raw"].startswith("This is one long sentence")


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError):
        ExtractConfig(kind="tools")

import pyarrow as pa
import pytest

from factory.errors import ConfigError
from factory.stage import StageContext
from generators.skillmix.aggregate import AggregateConfig
from generators.skillmix.stages.query_types import QueryTypesStage
from generators.skillmix.stages.skills import SkillsStage


def mentions(*answers, kind="skills", mode="direct"):
    return pa.table({
        "id": [str(i) for i in range(len(answers))],
        "kind": [kind] * len(answers),
        "mode": [mode] * len(answers),
        "names": [list(names) for names, _ in answers],
        "definitions": pa.array([list(defs) for _, defs in answers], pa.list_(pa.string())),
        "error": pa.array([None] * len(answers), pa.string()),
    })


def test_exact_and_near_duplicates_merge_with_frequencies():
    rows = mentions((["data_analysis", "cooking", "public_speaking"], [None, None, None]),
                    (["data_analysis", "data_analytics", "baking"], [None, None, "bread"]),
                    (["data_analysis", "cooking"], [None, None]))
    table = SkillsStage.prepare_input(AggregateConfig(merge_threshold=0.7), rows, {})
    merged = {r["name"]: r for r in table.to_pylist()}
    assert merged["data_analysis"]["frequency"] == 4 and merged["data_analysis"]["aliases"] == ["data_analytics"]
    assert merged["cooking"]["frequency"] == 2 and merged["public_speaking"]["frequency"] == 1
    assert "data_analytics" not in merged and merged["data_analysis"]["sources"] == ["direct"]
    exact = SkillsStage.prepare_input(AggregateConfig(merge_threshold=None), rows, {})
    assert exact.num_rows == 5


def test_user_files_and_entries_join_the_list(tmp_path):
    text = tmp_path / "skills.txt"
    text.write_text("# my skills\nnegotiation\nData Analysis: working with numbers\n\n")
    listing = tmp_path / "more.yaml"
    listing.write_text("- tax_law\n- name: first_aid\n  definition: helping the injured\n")
    config = AggregateConfig(files=[text, listing], entries=["poetry"], merge_threshold=None, min_frequency=2)
    rows = mentions((["data_analysis", "knitting"], [None, None]))
    merged = {r["name"]: r for r in SkillsStage.prepare_input(config, rows, {}).to_pylist()}
    # knitting (1 model mention < min_frequency) is dropped; user entries are always kept
    assert sorted(merged) == ["data_analysis", "first_aid", "negotiation", "poetry", "tax_law"]
    assert merged["data_analysis"]["sources"] == ["direct", "file"] and merged["data_analysis"]["frequency"] == 2
    assert merged["data_analysis"]["definition"] == "working with numbers"
    assert merged["first_aid"]["definition"] == "helping the injured"


def test_files_only_with_a_count_input(tmp_path):
    path = tmp_path / "types.yaml"
    path.write_text("Information-Seeking: wants facts\nHelp-Seeking: wants help\n")
    table = QueryTypesStage.prepare_input(AggregateConfig(files=[path], merge_threshold=None),
                                          pa.table({"id": ["0"], "index": [0]}), {})
    stage = QueryTypesStage(StageContext("query_types", AggregateConfig(), "run-1", "fp", {}))
    rows = stage(table).to_pylist()
    assert [(r["name"], r["definition"], r["sources"]) for r in rows] == [
        ("Help-Seeking", "wants help", ["file"]), ("Information-Seeking", "wants facts", ["file"])]


def test_query_types_keep_the_most_common_spelling_and_other_kinds_are_ignored():
    rows = pa.concat_tables([
        mentions((["Help-Seeking", "help seeking", "Planning"], ["wants help", None, None]),
                 (["Help-Seeking"], [None]), kind="query_types"),
        mentions((["cooking"], [None]), kind="skills"),
    ])
    table = QueryTypesStage.prepare_input(AggregateConfig(merge_threshold=None), rows, {})
    merged = {r["name"]: r for r in table.to_pylist()}
    assert sorted(merged) == ["Help-Seeking", "Planning"]
    assert merged["Help-Seeking"]["frequency"] == 3 and merged["Help-Seeking"]["aliases"] == ["help seeking"]


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="list file 'missing.txt' not found"):
        AggregateConfig(files=["missing.txt"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("- [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+:\d+: malformed YAML"):
        SkillsStage.prepare_input(AggregateConfig(files=[bad]), pa.table({"id": ["0"]}), {})
    with pytest.raises(ConfigError, match="no skills found"):
        SkillsStage.prepare_input(AggregateConfig(), pa.table({"id": ["0"], "index": [0]}), {})
    with pytest.raises(ConfigError, match="stage input has no 'names' column"):
        SkillsStage.prepare_input(AggregateConfig(), pa.table({"id": ["0"], "prompt": ["x"]}), {})


def test_merge_threshold_is_off_by_default():
    # The reference uses the extracted lists as they are: no embedding merge unless asked for.
    assert AggregateConfig().merge_threshold is None
    rows = mentions((["data_analysis", "cooking"], [None, None]), (["data_analytics", "Data Analysis"], [None, None]))
    names = sorted(SkillsStage.prepare_input(AggregateConfig(), rows, {}).column("name").to_pylist())
    assert names == ["cooking", "data_analysis", "data_analytics"]  # only identical spellings merge

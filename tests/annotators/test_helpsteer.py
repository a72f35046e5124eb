import json

import pytest

from annotators.helpsteer.aggregate import aggregate
from annotators.helpsteer.parse import RatingParseError, parse_score
from annotators.helpsteer.preference import combine, expected_strength
from annotators.helpsteer.rubrics import expectation, rating_prompt
from factory.config import load_pipeline
from factory.errors import FactoryError
from factory.runner import PipelineRunner
from factory.store import Store
from schemas.ratings import ATTRIBUTES
from tests.helpers import prompts, write_pipeline


def test_expectation_is_within_0_and_4():
    assert expectation([1, 0, 0, 0, 0]) == 0 and expectation([0, 0, 0, 0, 2]) == 4
    assert expectation([0.1, 0.1, 0.1, 0.1, 0.1]) == pytest.approx(2.0)
    assert 0 <= expectation([1e-9, 3e-7, 2e-3, 0.5, 1e-4]) <= 4
    with pytest.raises(ValueError):
        expectation([0, 0, 0, 0, 0])


def test_rating_prompt_holds_the_rubric():
    text = rating_prompt("verbosity", "hi", "hello there")
    assert "Verbosity:" in text and "[Response]\nhello there" in text and "single digit from 0 to 4" in text
    with pytest.raises(ValueError, match="unknown attribute"):
        rating_prompt("style", "a", "b")


@pytest.mark.parametrize("text, score", [("Clear and right. Score: 3", 3), ("score=4", 4), ("**Score:** 2", 2),
                                         ("I'd give it a 1 overall", 1), ("Score: 1\nScore: 0", 0)])
def test_parse_score(text, score):
    assert parse_score(text) == score


def test_parse_score_fails_without_a_digit():
    with pytest.raises(RatingParseError):
        parse_score("excellent answer, ten out of ten")


def test_aggregate_keeps_the_most_agreeing_raters():
    ratings = [dict.fromkeys(ATTRIBUTES, v) for v in (3.0, 3.0, 4.0, 0.0)]
    result = aggregate(ratings, keep=3, max_spread=2)
    assert result.kept == [0, 1, 2] and result.scores["helpfulness"] == pytest.approx(10 / 3)
    assert result.spread == 1.0 and result.high_disagreement is False
    wide = aggregate([dict.fromkeys(ATTRIBUTES, v) for v in (0.0, 4.0)], keep=3, max_spread=2)
    assert wide.high_disagreement is True and wide.scores["coherence"] == 2.0
    partial = aggregate([{"helpfulness": 2.0}, {"helpfulness": 4.0, "verbosity": 1.0}])
    assert partial.scores["verbosity"] == 1.0 and partial.scores["correctness"] is None


def test_preference_strength_in_both_orders():
    assert expected_strength([1, 0, 0, 0, 0, 0, 0]) == -3 and expected_strength([0, 0, 0, 0, 0, 0, 1]) == 3
    assert combine(-2.2, -1.8) == (-2, True)
    assert combine(1.0, -0.2) == (0, False)  # orders disagree and cancel out: no preference
    assert combine(2.6, 3.0) == (3, True) and combine(0.5, 0.5) == (1, True)


def pipeline(model: str, stages: list[dict]) -> dict:
    return {"name": "hs-test", "executor": "local", "models": {"m": {"name": model, "dtype": "float32"}},
            "stages": [{"stage": "generate", "input": {"seed": "prompts.jsonl"}, "model": "m",
                        "config": {"n": 2, "max_new_tokens": 4}}, *stages]}


def test_helpsteer_stages_on_a_tiny_model(tmp_path, long_model_dir):
    store = Store(tmp_path / "store")
    stages = [
        {"stage": "helpsteer", "input": {"dataset": "responses"}, "model": "m",
         "config": {"raters": [{"name": "plain"}, {"name": "strict", "system_prompt": "You are a strict grader."}]}},
        {"stage": "helpsteer", "name": "helpsteer_gen", "input": {"dataset": "responses", "where": "sample_index = 0"},
         "model": "m", "config": {"mode": "generate", "attributes": ["helpfulness"], "max_new_tokens": 4}},
        {"stage": "helpsteer_aggregate", "input": {"dataset": "ratings", "where": "source = 'llm' AND error IS NULL"},
         "config": {"keep": 2}},
        {"stage": "helpsteer_preference", "input": {"dataset": "responses"}, "model": "m",
         "config": {"max_new_tokens": 4}},
    ]
    summaries = PipelineRunner(load_pipeline(write_pipeline(tmp_path, pipeline(str(long_model_dir), stages), prompts(2))),
                               store).run()
    assert [s.rows for s in summaries] == [4, 8, 2, 4, 2]
    ratings = store.sql("SELECT * FROM ratings WHERE template LIKE '%expectation'").to_dicts()
    assert {r["rater"].rsplit("/", 1)[1] for r in ratings} == {"plain", "strict"}
    for row in ratings:
        assert row["error"] is None
        assert all(0.0 <= row[a] <= 4.0 for a in ATTRIBUTES)
    # Generative mode on a random model: unparsable text is an error row that keeps the text.
    generated = store.sql("SELECT * FROM ratings WHERE template LIKE '%generate'").to_dicts()
    for row in generated:
        assert row["justification"].startswith("helpfulness: ")
        assert (row["error"] is None) == (row["helpfulness"] is not None)
        assert row["correctness"] is None
    aggregated = store.sql("SELECT * FROM aggregated_ratings").to_dicts()
    assert all(len(r["raters"]) == 2 and len(r["kept_raters"]) == 2 and 0 <= r["helpfulness"] <= 4 for r in aggregated)
    prefs = store.sql("SELECT * FROM helpsteer_preferences").to_dicts()
    for row in prefs:
        assert -3 <= row["preference_strength"] <= 3 and -3 <= row["strength_forward"] <= 3
        assert row["justification"] is not None and row["justification_reverse"] is not None
        assert row["response_1_id"] != row["response_2_id"]
    again = PipelineRunner(load_pipeline(tmp_path / "pipeline.yaml"), store).run()
    assert [s.rows for s in again] == [0, 0, 0, 0, 0]


def import_pipeline(stage: str) -> dict:
    return {"name": "human", "executor": "local",
            "stages": [{"stage": stage, "input": {"seed": "labels.jsonl"}}]}


def write_labels(folder, lines):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_human_ratings_land_beside_llm_ratings(tmp_path):
    write_labels(tmp_path, [
        {"id": "h1", "prompt": "Say hi", "response": "Hi!", "rater": "ann-1", "helpfulness": 4, "correctness": 4,
         "coherence": 4, "complexity": 0, "verbosity": 1, "justification": "fine"},
        {"id": "h2", "prompt": "Say hi", "response": "Hi!", "rater": "ann-2", "helpfulness": 3},
    ])
    store = Store(tmp_path / "store")
    path = write_pipeline(tmp_path, import_pipeline("import_ratings"))
    PipelineRunner(load_pipeline(path), store).run()
    rows = store.sql("SELECT rater, source, helpfulness, verbosity, response_key FROM ratings ORDER BY rater").rows()
    assert [r[:4] for r in rows] == [("ann-1", "human", 4.0, 1.0), ("ann-2", "human", 3.0, None)]
    assert rows[0][4] == rows[1][4]  # same text, same key: aggregation and agreement join on it


def test_bad_human_label_names_line_and_field(tmp_path):
    write_labels(tmp_path, [{"id": "h1", "prompt": "p", "response": "r", "rater": "a", "helpfulness": 2},
                            {"id": "h2", "prompt": "p", "response": "r", "rater": "a", "helpfulness": 7}])
    with pytest.raises(FactoryError, match="seed line 2: field 'helpfulness': 7 is outside 0..4"):
        PipelineRunner(load_pipeline(write_pipeline(tmp_path, import_pipeline("import_ratings"))),
                       Store(tmp_path / "store")).run()
    write_labels(tmp_path / "p", [{"id": "h1", "prompt": "p", "response_1": "a", "response_2": "b", "rater": "x",
                                   "preference_strength": 1.5}])
    with pytest.raises(FactoryError, match="seed line 1: field 'preference_strength': expected an integer"):
        PipelineRunner(load_pipeline(write_pipeline(tmp_path / "p", import_pipeline("import_preferences"))),
                       Store(tmp_path / "store2")).run()


def test_human_preferences_import(tmp_path):
    write_labels(tmp_path, [{"id": "h1", "prompt": "p", "response_1": "a", "response_2": "b", "rater": "x",
                             "preference_strength": -2, "justification": "a is shorter"}])
    store = Store(tmp_path / "store")
    PipelineRunner(load_pipeline(write_pipeline(tmp_path, import_pipeline("import_preferences"))), store).run()
    assert store.sql("SELECT preference_strength, source, justification FROM helpsteer_preferences").rows() == [
        (-2, "human", "a is shorter")]

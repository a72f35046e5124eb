"""Judge, jury and debate stage logic on scripted engines with planted preferences."""

import json

import pyarrow as pa
import pytest

from annotators.judges.core import combine_orders, likert_expectation, majority
from annotators.judges.items import build_items
from annotators.judges.prompts import VerdictParseError, parse_ranking, parse_verdict
from annotators.judges.stages.debate import DebateConfig, DebateStage
from annotators.judges.stages.judge import JudgeConfig, JudgeStage
from annotators.judges.stages.jury import JuryConfig, JuryStage
from factory.errors import FactoryError
from factory.stage import StageContext
from tests.annotators.judges.fakes import ScriptedJudge


def responses(prompts: int = 3) -> pa.Table:
    """Per prompt: a short 'base' answer and a long 'verbose' one (long first for odd prompts)."""
    rows = []
    for p in range(prompts):
        pair = [("base", f"short {p}"), ("verbose", f"a much longer and more detailed answer {p} " * 3)]
        for i, (config, text) in enumerate(pair if p % 2 == 0 else pair[::-1]):
            rows.append({"id": f"r{p}{i}", "parent_id": f"p{p}", "prompt": f"question {p}", "response": text,
                         "template": config, "error": None})
    return pa.Table.from_pylist(rows)


def stage(cls, config, **engines):
    return cls(StageContext("test", config, "run", "fp", engines))


def judge(config: dict, engine) -> list:
    typed = JudgeConfig.model_validate(config)
    items = build_items(typed, responses(), typed.strategy, "judge").to_pylist()
    return stage(JudgeStage, typed, model=engine).process(items)


def test_both_orders_expose_a_position_biased_judge():
    rows = judge({"strategy": "pairwise", "compare": ["verbose", "base"]}, ScriptedJudge("position"))
    assert len(rows) == 3
    for row in rows:
        assert row.verdict_forward == "A" and row.verdict_reverse == "B"
        assert row.position_bias is True and row.verdict == "tie"
        assert row.p_a_forward == pytest.approx(0.9) and row.p_a_reverse == pytest.approx(0.1)


def test_a_consistent_judge_is_decisive_in_both_orders():
    rows = judge({"strategy": "pairwise", "compare": ["verbose", "base"]}, ScriptedJudge("longer"))
    assert all(r.configurations == ["verbose", "base"] and r.verdict == "A" and r.position_bias is False for r in rows)
    assert rows[0].evaluator == "judge:pairwise:scripted/default" and rows[0].method == "judge"


def test_generated_verdicts_parse_or_become_error_rows():
    good = judge({"strategy": "pairwise", "mode": "generate"}, ScriptedJudge("longer"))
    assert all(r.error is None and r.verdict in ("A", "B") for r in good)
    bad = judge({"strategy": "pairwise", "mode": "generate"}, ScriptedJudge("longer", junk=True))
    assert all(r.error.startswith("VerdictParseError") and r.verdict is None and "both are lovely" in r.raw_output
               for r in bad)


def test_single_scores_and_rankings():
    singles = judge({"strategy": "single", "variants": [{"name": "a"}, {"name": "b", "system_prompt": "Be strict."}]},
                    ScriptedJudge())
    assert len(singles) == 12 and {r.evaluator for r in singles} == {"judge:single:scripted/a", "judge:single:scripted/b"}
    by_config = {r.configurations[0]: r.score for r in singles}
    assert 1 <= by_config["base"] < by_config["verbose"] <= 5
    ranked = judge({"strategy": "ranking"}, ScriptedJudge())
    for row in ranked:
        assert row.error is None and row.configurations[row.ranking[0]] == "verbose"
    junk = judge({"strategy": "ranking"}, ScriptedJudge(junk=True))
    assert all(r.error and r.ranking is None for r in junk)


def test_jury_majority_keeps_each_juror():
    config = JuryConfig.model_validate({"compare": ["verbose", "base"], "jurors": [
        {"name": "fair"}, {"name": "also_fair", "role": "model_2"}, {"name": "biased", "role": "model_3"}]})
    items = build_items(config, responses(), "pairwise", "jury").to_pylist()
    jury = stage(JuryStage, config, model=ScriptedJudge(), model_2=ScriptedJudge(), model_3=ScriptedJudge("position"))
    for row in jury.process(items):
        votes = json.loads(row.jurors)
        assert [v["verdict"] for v in votes] == ["A", "A", "tie"] and row.verdict == "A"
        assert row.position_bias is True and row.evaluator == "jury:pairwise:jury"
    with pytest.raises(FactoryError, match=r"jurors\[1\].role: no model given for role 'model_2'"):
        stage(JuryStage, config, model=ScriptedJudge())
    assert majority(["A", "B"]) == "tie" and majority(["A", "A", "B"]) == "A" and majority([]) == "tie"


def test_debate_keeps_both_transcripts():
    config = DebateConfig.model_validate({"compare": ["verbose", "base"], "rounds": 2, "agents": [
        {"name": "Pro"}, {"name": "Con", "system_prompt": "Argue for the other side."}]})
    items = build_items(config, responses(2), "pairwise", "debate").to_pylist()
    rows = stage(DebateStage, config, model=ScriptedJudge()).process(items)
    assert len(rows) == 2
    for row in rows:
        turns = json.loads(row.transcript)
        assert [(t["order"], t["round"], t["agent"]) for t in turns[:4]] == [
            ("AB", 1, "Pro"), ("AB", 1, "Con"), ("AB", 2, "Pro"), ("AB", 2, "Con")]
        assert len(turns) == 8 and row.verdict == "A" and row.method == "debate"


def test_items_check_configurations():
    with pytest.raises(FactoryError, match="no input rows of configuration"):
        build_items(JudgeConfig(compare=["verbose", "nope"]), responses(), "pairwise", "judge")
    with pytest.raises(FactoryError, match="config.configuration"):
        build_items(JudgeConfig(configuration="no_such_column"), responses(), "pairwise", "judge")
    with pytest.raises(ValueError, match="the same"):
        JudgeConfig(compare=["x", "x"])


def test_parsers_and_helpers():
    assert parse_verdict("blah\nVerdict: b") == "B" and parse_verdict("**Verdict:** tie") == "tie"
    with pytest.raises(VerdictParseError):
        parse_verdict("A is nicer")
    assert parse_ranking("Ranking: 2 > 3 > 1", 3) == [1, 2, 0]
    with pytest.raises(VerdictParseError):
        parse_ranking("2 > 2 > 1", 3)
    assert combine_orders("A", "A") == ("A", False) and combine_orders("A", "B") == ("tie", True)
    assert combine_orders("A", "tie") == ("tie", False)
    assert likert_expectation([0, 0, 1, 0, 0]) == 3.0

import json

import pyarrow as pa
import pytest

from factory.errors import ConfigError
from factory.stage import StageContext
from factory.store import Store
from generators.skillmix.stages.generate import SkillMixConfig, SkillMixGenerateStage
from tests.generators.skillmix.fakes import ScriptedEngine, well_behaved

SKILLS = pa.table({"id": [f"s{i}" for i in range(6)], "name": [f"skill_{i}" for i in range(6)]})


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "store")
    store.append("query_types", pa.table({
        "id": ["t1", "t2", "t3"],
        "name": ["Information-Seeking", "Help-Seeking", "Planning"],
        "definition": ["wants facts", "wants help", None],
        "error": pa.array([None, None, None], pa.string()),
    }))
    return store


def items(store, **config):
    cfg = SkillMixConfig(**{"num_examples": 6, **config})
    return cfg, SkillMixGenerateStage.prepare_input(cfg, SKILLS, {"query_types": store.arrow("SELECT * FROM query_types")})


def run(engine, cfg, table):
    stage = SkillMixGenerateStage(StageContext("skillmix", cfg, "run-1", "fp", {"model": engine}))
    return stage(table).to_pylist()


def test_work_items_are_deterministic_with_balanced_types(store):
    _, first = items(store, seed=3)
    _, again = items(store, seed=3)
    assert first.equals(again) and first.num_rows == 6 and len(set(first.column("id").to_pylist())) == 6
    types = first.column("query_type").to_pylist()
    assert sorted(types) == sorted(["Information-Seeking", "Help-Seeking", "Planning"] * 2)
    assert first.column("query_prompt").to_pylist()[types.index("Help-Seeking")] == "Help-Seeking: wants help"
    _, other = items(store, seed=4)
    assert first.column("id").to_pylist() != other.column("id").to_pylist()


def test_all_five_turns_by_default_and_the_rewrite_is_the_response(store):
    cfg, table = items(store)
    engine = ScriptedEngine()
    rows = run(engine, cfg, table)
    assert engine.calls == [6, 6, 6, 6, 6]  # write, continue, critique, refine, rewrite: one call each
    assert all(r["error"] is None for r in rows) and len({r["id"] for r in rows}) == 6
    row = rows[0]
    assert row["instruction"] == f"A sharper question needing {', '.join(row['skills'])}?"  # from the refine turn
    assert row["response"] == "A detailed answer that fits."  # from the rewrite turn, as the reference keeps it
    assert row["generator"] == "scripted" == row["model"]
    assert row["template"].startswith("skillmix/reference@") and row["rewrites"] == 2 and not row["truncated"]
    turns = json.loads(row["turns"])
    assert [t["label"] for t in turns if t["role"] == "assistant"] == ["write", "continue", "critique", "refine",
                                                                       "rewrite"]
    assert row["prompt_tokens"] == 50 and row["completion_tokens"] == 25


def test_the_released_prompt_is_the_default_write_turn(store):
    cfg, table = items(store)
    engine = ScriptedEngine()
    run(engine, cfg, table)
    first = engine.conversations[0][0]["content"]
    item = table.to_pylist()[0]
    skills = ", ".join(item["skills"])
    # Three complete examples, each under Task Type / Skills headers, then the task in the same headers.
    assert first.startswith("I am creating a dataset of engaging human-AI interactions that demonstrate the "
                            "capabilities and value of AI models across diverse skills.")
    assert [first.count(f"Example {i}: \n### Task Type: ") for i in (1, 2, 3)] == [1, 1, 1]
    assert first.count("### Instruction: ") == 3 and first.count("### Skills: ") == 4
    assert f"a query that aligns with the following task type:\n{item['query_prompt']}\n\n. Include" in first
    assert first.endswith(f"### Task Type: {item['query_type']}\n### Skills: {skills}")
    assert "{" not in first  # every placeholder filled
    asked = [c[-1]["content"] for c in engine.conversations[6:12]]
    assert all(a.startswith("Thanks! It looks like the response may have been cut off.") for a in asked)


def test_when_cut_off_keeps_the_short_conversation(store):
    cfg, table = items(store, turns="when_cut_off", templates="v1")
    engine = ScriptedEngine()
    rows = run(engine, cfg, table)
    assert engine.calls == [6, 6, 6]  # write, critique, refine; nothing was cut off
    row = rows[0]
    assert row["response"] == "A detailed answer." and row["rewrites"] == 0
    assert row["template"].startswith("skillmix/v1@")
    assert [t["label"] for t in json.loads(row["turns"])] == ["write"] * 2 + ["critique"] * 2 + ["refine"] * 2
    assert row["prompt_tokens"] == 30 and row["completion_tokens"] == 15


def test_cut_off_answers_are_re_asked_only_for_those_rows(store):
    cut = {"count": 0}

    def reply(conversation):
        prompt = conversation[-1]["content"]
        cut_this = "skill_0" in conversation[0]["content"]
        if cut_this and prompt.startswith("I am creating"):
            return "### Instruction: Q\n### Response: partial ans", "length"
        if cut_this and prompt.startswith("Now, please refine"):
            return "### Instruction: Q2\n### Response: long refined ans", "length"
        if prompt.startswith(("Thanks! It looks like", "It looks like the improved")):
            cut["count"] += 1
            return "A complete rewritten answer.", "stop"
        return well_behaved(conversation)

    cfg, table = items(store, turns="when_cut_off", templates="v1")
    engine = ScriptedEngine(reply)
    rows = run(engine, cfg, table)
    with_zero = [r for r in rows if "skill_0" in r["skills"]]
    assert with_zero and cut["count"] == 2 * len(with_zero)
    assert engine.calls == [6, len(with_zero), 6, 6, len(with_zero)]
    for row in with_zero:
        assert (row["instruction"], row["response"], row["rewrites"]) == ("Q2", "A complete rewritten answer.", 2)
        labels = [t["label"] for t in json.loads(row["turns"]) if t["role"] == "assistant"]
        assert labels == ["write", "continue", "critique", "refine", "rewrite"]


def test_unparsable_output_becomes_an_error_row_with_its_turns(store):
    def reply(conversation):
        if "skill_1" in conversation[0]["content"]:
            return "I cannot follow formats.", "stop"
        return well_behaved(conversation)

    cfg, table = items(store)
    rows = run(ScriptedEngine(reply), cfg, table)
    bad = [r for r in rows if "skill_1" in r["skills"]]
    # The rewrite turn's text is taken whole as the response (it is asked for the response only), so
    # only the instruction is missing.
    assert bad and all(r["error"] == "could not parse 'Instruction:' from any turn" for r in bad)
    assert all(r["instruction"] is None and r["response"] is None and "I cannot follow" in r["turns"] for r in bad)
    assert all(r["error"] is None for r in rows if r not in bad)


def test_engine_failure_becomes_error_rows_not_a_crash(store):
    def reply(conversation):
        if "skill_2" in conversation[0]["content"]:
            raise RuntimeError("engine fell over")
        return well_behaved(conversation)

    cfg, table = items(store)
    rows = run(ScriptedEngine(reply), cfg, table)
    assert len(rows) == 6
    errors = [r for r in rows if r["error"]]
    assert errors and all("RuntimeError: engine fell over" in r["error"] for r in errors)
    assert all("skill_2" in r["skills"] for r in errors)


@pytest.mark.parametrize("style,expected", [("junk", "Well, it depends, basically, on many things, you know."),
                                            ("brevity", "One short paragraph.")])
def test_shirkers_get_the_poor_response_and_are_flagged(store, style, expected):
    cfg, table = items(store, num_examples=10, shirker_fraction=0.2, shirker_style=style)
    assert sum(table.column("shirker").to_pylist()) == 2
    engine = ScriptedEngine()
    rows = run(engine, cfg, table)
    shirkers = [r for r in rows if r["shirker"]]
    assert len(shirkers) == 2 and all(r["response"] == expected and r["shirker_style"] == style for r in shirkers)
    assert all(r["response"] == "A detailed answer that fits." and r["shirker_style"] is None
               for r in rows if not r["shirker"])
    asked = [c[0]["content"] for c in engine.conversations if "Consider the following instruction" in c[0]["content"]]
    assert len(asked) == 2 and all(a.startswith('Greetings! Consider the following instruction: "') for a in asked)
    assert all('"label": "shirker"' in r["turns"] for r in shirkers)


def test_missing_query_types_or_too_few_skills_fail_clearly(tmp_path, store):
    with pytest.raises(ConfigError, match="data set 'query_types' is not in the store"):
        SkillMixGenerateStage.prepare_input(SkillMixConfig(num_examples=2), SKILLS, {})
    with pytest.raises(ConfigError, match="k=7 distinct skills per example, but only 6"):
        items(store, k=7)


def test_bad_template_set_is_a_config_error():
    with pytest.raises(ValueError, match="template set 'nope'"):
        SkillMixConfig(num_examples=1, templates="nope")

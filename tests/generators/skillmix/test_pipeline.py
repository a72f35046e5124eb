"""The SkillMix stages through the runner: a tiny random model (fast), and SmolLM2 (slow)."""

from pathlib import Path

import pytest

from factory.config import load_pipeline
from factory.runner import PipelineRunner
from factory.store import Store
from tests.helpers import build_tiny_model, write_pipeline

QUERY_TYPES = ["Information-Seeking: wants facts", "Help-Seeking: wants help", "Planning: wants a plan"]
SKILLS = ["baking", "budgeting", "poetry", "negotiation", "statistics"]


@pytest.fixture(scope="module")
def long_tiny_model(tmp_path_factory) -> Path:
    # The SkillMix prompts are long and byte-level on a 300-token vocabulary: give the model room.
    return build_tiny_model(tmp_path_factory.mktemp("tiny-long"), max_positions=4096)


def skillmix_pipeline(model: str, num_examples: int, max_new_tokens: int, extract: bool = True,
                      **generate) -> dict:
    stages = []
    if extract:
        stages += [
            {"stage": "skillmix.extract", "name": "extract_skills", "input": {"count": 2}, "model": "m",
             "config": {"kind": "skills", "count": 5, "max_new_tokens": max_new_tokens}},
            {"stage": "skillmix.extract", "name": "extract_types", "input": {"count": 1}, "model": "m",
             "config": {"kind": "query_types", "count": 3, "max_new_tokens": max_new_tokens}},
        ]
    mentions = {"dataset": "skillmix_mentions"} if extract else {"count": 1}
    stages += [
        {"stage": "skillmix.skills", "input": mentions, "config": {"entries": SKILLS, "merge_threshold": None}},
        {"stage": "skillmix.query_types", "input": mentions,
         "config": {"entries": QUERY_TYPES, "min_frequency": 2, "merge_threshold": None}},
        {"stage": "skillmix.generate", "name": "skillmix", "input": {"dataset": "skills"}, "model": "m",
         "config": {"num_examples": num_examples, "max_new_tokens": max_new_tokens, "seed": 1, **generate},
         "resources": {"batch_size": num_examples}},
    ]
    return {"name": "skillmix-test", "executor": "local",
            # One torch thread: on a shared 2-core machine two threads spin against each other (10x slower).
            "models": {"m": {"name": model, "dtype": "float32", "threads": 1}}, "stages": stages}


def short_templates(folder: Path) -> Path:
    """A user's own template set (short prompts keep the tiny model fast)."""
    folder.mkdir()
    texts = {"write": "Write a {query_type} query needing {num_skills} skills: {skills}. Then answer it.\n"
                      "Format:\n### Instruction: <the query>\n### Response: <the answer>", "continue": "Go on.",
             "critique": "Critique it.", "refine": "Refine it.", "rewrite": "Rewrite it.",
             "shirker_junk": "Be lazy: {instruction}", "shirker_brevity": "Be brief: {instruction}"}
    for name, text in texts.items():
        (folder / f"{name}.txt").write_text(text)
    return folder


def test_full_pipeline_on_a_tiny_model_keeps_unparsable_rows_and_resumes(tmp_path, long_tiny_model):
    templates = str(short_templates(tmp_path / "templates"))
    path = write_pipeline(tmp_path, skillmix_pipeline(str(long_tiny_model), 6, 4, shirker_fraction=0.5,
                                                      templates=templates))
    store = Store(tmp_path / "store")
    summaries = PipelineRunner(load_pipeline(path), store).run()
    assert [s.stage for s in summaries] == ["extract_skills", "extract_types", "skills", "query_types", "skillmix"]
    generated = summaries[-1]
    assert generated.rows == 6 and generated.error_rows == 6  # random weights never write "Instruction:"
    assert generated.completion_tokens > 0
    # min_frequency drops one-off model mentions, never the user's own entries
    types = store.sql("SELECT name FROM query_types ORDER BY name")["name"].to_list()
    assert set(types) >= {"Help-Seeking", "Information-Seeking", "Planning"}
    counts = store.sql("SELECT query_type, count(*) AS n FROM instructions GROUP BY 1")["n"].to_list()
    assert max(counts) - min(counts) <= 1
    assert store.sql("SELECT count(*) AS n FROM instructions WHERE shirker")["n"][0] == 3
    assert store.sql("SELECT count(*) AS n FROM instructions WHERE turns LIKE '%Critique it.%'")["n"][0] == 6
    assert store.sql("SELECT DISTINCT template FROM instructions")["template"][0].startswith("skillmix/")
    again = PipelineRunner(load_pipeline(path), store).run()
    assert [s.rows for s in again] == [0, 0, 0, 0, 0]


@pytest.mark.slow
def test_smollm2_writes_at_least_eight_examples(tmp_path):
    # Short prompts and replies keep this under a minute on 2 shared cores; the bundled templates
    # are exercised by examples/skillmix.yaml.
    templates = str(short_templates(tmp_path / "templates"))
    path = write_pipeline(tmp_path, skillmix_pipeline("smollm2-135m-instruct", 8, 32, extract=False,
                                                      templates=templates))
    store = Store(tmp_path / "store")
    summaries = PipelineRunner(load_pipeline(path), store).run()
    assert summaries[-1].rows == 8
    frame = store.sql("SELECT instruction, response, skills, error FROM instructions")
    assert frame.height == 8 and all(len(skills) == 2 for skills in frame["skills"].to_list())
    print(frame.to_dicts())

"""The generator-reviewer feedback loop: rounds, early stop on approval, error rows, answers for judging."""

import pyarrow as pa
import pytest

from factory.config import load_pipeline
from factory.engines import Completion, Generation
from factory.runner import PipelineRunner
from factory.stage import StageContext
from factory.store import Store
from generators.feedback.prompts import parse_approval
from generators.feedback.stages import (FeedbackAnswersConfig, FeedbackAnswersStage, FeedbackLoopConfig,
                                        FeedbackLoopStage)
from tests.helpers import FakeEngine, build_tiny_model, prompts, write_pipeline


class Reviewer(FakeEngine):
    """Approves a revised answer to a prompt containing 'easy'; asks for revisions otherwise."""

    def __init__(self, fail_on=None):
        super().__init__(name="reviewer", fail_on=fail_on)

    def generate(self, conversations, sampling):
        out = []
        for conversation in conversations:
            text = conversation[-1]["content"]
            if self.fail_on and self.fail_on in text:
                out.append(Generation(prompt_tokens=1, error="server said no"))
                continue
            verdict = "APPROVE" if "easy" in text and "revised" in text else "REVISE"
            out.append(Generation(prompt_tokens=9, completions=[Completion(f"Add detail.\nVerdict: {verdict}", "stop", 4)]))
        return out


class Writer(FakeEngine):
    def generate(self, conversations, sampling):
        out = []
        for conversation in conversations:
            revised = len(conversation) > 2
            text = f"revised answer to {conversation[1]['content']}" if revised else f"answer to {conversation[-1]['content']}"
            out.append(Generation(prompt_tokens=7, completions=[Completion(text, "stop", 3)]))
        return out


def run_loop(rows, rounds=2, early_stop=True, reviewer=None):
    config = FeedbackLoopConfig(rounds=rounds, early_stop=early_stop, configuration="duo")
    stage = FeedbackLoopStage(StageContext("loop", config, "run", "fp",
                                           {"generator": Writer(name="writer"), "reviewer": reviewer or Reviewer()}))
    return stage.process(rows)


def test_rounds_of_write_review_revise():
    turns = run_loop([{"id": "p0", "prompt": "hard question"}], rounds=2)
    assert [(t.round, t.role) for t in turns] == [(0, "generator"), (1, "reviewer"), (1, "generator"),
                                                  (2, "reviewer"), (2, "generator")]
    assert [t.final for t in turns] == [False, False, False, False, True]
    assert turns[1].approved is False and turns[0].model == "writer" and turns[1].model == "reviewer"
    assert turns[2].text.startswith("revised") and all(t.configuration == "duo" for t in turns)
    assert len({t.id for t in turns}) == 5 and all(t.parent_id == "p0" for t in turns)


def test_approval_stops_early_and_zero_rounds_is_a_single_agent():
    turns = run_loop([{"id": "p0", "prompt": "easy question"}, {"id": "p1", "prompt": "hard question"}], rounds=3)
    easy = [t for t in turns if t.parent_id == "p0"]
    # round 1 reviews the first answer (revise), round 2 approves the revision: no round-2 revision, no round 3.
    assert [(t.round, t.role, t.approved) for t in easy] == [(0, "generator", None), (1, "reviewer", False),
                                                             (1, "generator", None), (2, "reviewer", True)]
    assert easy[2].final and len([t for t in turns if t.parent_id == "p1"]) == 7
    assert len(run_loop([{"id": "p0", "prompt": "easy question"}], rounds=3, early_stop=False)) == 7
    (single,) = run_loop([{"id": "p0", "prompt": "q"}], rounds=0)
    assert single.final and single.round == 0


def test_a_failed_turn_makes_one_error_row():
    turns = run_loop([{"id": "p0", "prompt": "fine"}, {"id": "p1", "prompt": "poison"}], reviewer=Reviewer(fail_on="poison"))
    (error,) = [t for t in turns if t.parent_id == "p1"]
    assert error.error == "server said no" and error.text is None
    assert len([t for t in turns if t.parent_id == "p0"]) == 5


def test_parse_approval():
    assert parse_approval("ok\nVerdict: APPROVE") is True and parse_approval("Verdict: **revise**") is False
    assert parse_approval("Verdict: revise\n...\nVerdict: approved") is True and parse_approval("looks fine") is None


def test_answers_pick_round0_and_final():
    turns = run_loop([{"id": "p0", "prompt": "hard question"}, {"id": "p1", "prompt": "easy question"}], rounds=2)
    table = pa.Table.from_pylist([t.model_dump() for t in turns])
    config = FeedbackAnswersConfig(configuration="duo")
    items = FeedbackAnswersStage.prepare_input(config, table, {})
    assert items.column("id").to_pylist() == ["p0", "p1"]
    stage = FeedbackAnswersStage(StageContext("answers", config, "run", "fp2", {}))
    rows = stage.process(items.to_pylist())
    assert [(r.parent_id, r.template, r.sample_index) for r in rows] == [
        ("p0", "feedback:duo:round0", 0), ("p0", "feedback:duo:final", 1),
        ("p1", "feedback:duo:round0", 0), ("p1", "feedback:duo:final", 1)]
    assert rows[0].response == "answer to hard question" and rows[1].response.startswith("revised")
    with pytest.raises(Exception, match="no turns of configuration 'other'"):
        FeedbackAnswersStage.prepare_input(FeedbackAnswersConfig(configuration="other"), table, {})


@pytest.fixture(scope="module")
def long_tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-feedback"), max_positions=2048)


def test_feedback_pipeline_on_a_tiny_model_resumes(tmp_path, long_tiny):
    config = {"name": "fb", "executor": "local",
              "models": {"gen": {"name": str(long_tiny), "dtype": "float32"}, "rev": {"name": str(long_tiny), "dtype": "float32"}},
              "stages": [
                  {"stage": "feedback_loop", "input": {"seed": "prompts.jsonl"}, "models": {"generator": "gen", "reviewer": "rev"},
                   "config": {"rounds": 2, "max_new_tokens": 6, "review_max_new_tokens": 6, "configuration": "tiny"}},
                  {"stage": "feedback_answers", "input": {"dataset": "feedback_turns"}, "config": {"configuration": "tiny"}}]}
    store = Store(tmp_path / "store")
    path = write_pipeline(tmp_path, config, prompts(2))
    summaries = PipelineRunner(load_pipeline(path), store).run()
    assert summaries[0].rows == 10 and summaries[0].error_rows == 0  # tiny reviews never approve: 5 turns each
    assert summaries[1].rows == 4
    turns = store.sql("SELECT round, role, final FROM feedback_turns ORDER BY parent_id, id").to_dicts()
    assert sum(t["final"] for t in turns) == 2
    again = PipelineRunner(load_pipeline(path), store).run()
    assert [s.rows for s in again] == [0, 0]

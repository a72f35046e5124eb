import pyarrow as pa

from factory.stage import StageContext
from generators.stages import GenerateConfig, GenerateStage
from tests.helpers import FakeEngine


def make_stage(engine, **config):
    context = StageContext("answers", GenerateConfig(**config), "run-1", "fp", {"model": engine})
    return GenerateStage(context)


def batch(*prompts):
    return pa.table({"id": [f"p{i}" for i in range(len(prompts))], "prompt": list(prompts)})


def test_rows_per_sample_with_lineage():
    out = make_stage(FakeEngine(), n=2, system_prompt="be kind")(batch("a", "b")).to_pylist()
    assert [(r["parent_id"], r["sample_index"]) for r in out] == [("p0", 0), ("p0", 1), ("p1", 0), ("p1", 1)]
    assert len({r["id"] for r in out}) == 4
    assert all(r["run_id"] == "run-1" and r["stage"] == "answers" and r["error"] is None for r in out)
    assert out[1]["response"] == "answer 1 to a" and out[0]["system_prompt"] == "be kind"
    assert '"n":2' in out[0]["sampling"]


def test_a_failing_row_becomes_an_error_row_and_the_rest_complete():
    engine = FakeEngine(fail_on="poison")
    out = make_stage(engine, n=1)(batch("fine", "poison pill", "also fine")).to_pylist()
    assert [r["error"] is None for r in out] == [True, False, True]
    assert "RuntimeError: cannot answer 'poison pill'" in out[1]["error"]
    assert out[1]["response"] is None and out[1]["parent_id"] == "p1"
    assert engine.calls == [3, 1, 1, 1]  # the batch, then each row alone


def test_empty_prompt_is_an_error_row():
    out = make_stage(FakeEngine())(batch("ok", "  ")).to_pylist()
    assert out[1]["error"].startswith("ValueError: column 'prompt' is empty")


def test_ids_do_not_depend_on_the_run():
    first = make_stage(FakeEngine())(batch("a")).column("id").to_pylist()
    context = StageContext("answers", GenerateConfig(), "run-2", "fp", {"model": FakeEngine()})
    assert GenerateStage(context)(batch("a")).column("id").to_pylist() == first


def test_real_tiny_model(tiny_engine):
    out = make_stage(tiny_engine, n=2, max_new_tokens=5)(batch("hello", "the sky")).to_pylist()
    assert len(out) == 4 and all(r["error"] is None for r in out)
    assert all(r["completion_tokens"] >= 1 and r["prompt_tokens"] > 0 for r in out)

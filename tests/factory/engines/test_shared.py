"""Engines shared by a run: one load per distinct model, supervised engine actors on real Ray."""

from __future__ import annotations

import pytest

import factory.engines.shared as shared
import factory.engines.spec as spec_module
from factory.config import load_pipeline
from factory.engines import ModelSpec, SamplingParams
from factory.errors import FactoryError
from factory.runner import PipelineRunner
from factory.store import Store
from tests.helpers import generate_pipeline, prompts, write_pipeline

GREEDY = SamplingParams(max_new_tokens=4, temperature=0.0)


def two_stage_pipeline(model_dir: str, executor: str) -> dict:
    """Two stages naming two `models:` entries with the same settings: one engine."""
    raw = generate_pipeline(model_dir, executor=executor, n=1)
    raw["models"]["same"] = dict(raw["models"]["m"])
    second = dict(raw["stages"][0], name="again", model="same", output="again",
                  input={"dataset": "responses", "where": "error IS NULL"})
    second["config"] = dict(second["config"], prompt_column="response")
    raw["stages"].append(second)
    return raw


def test_each_distinct_model_loads_once_per_run(tmp_path, tiny_model_dir, monkeypatch):
    loads = []
    real_load = shared.load_engine
    monkeypatch.setattr(shared, "load_engine", lambda spec: loads.append(spec.name) or real_load(spec))
    path = write_pipeline(tmp_path, two_stage_pipeline(str(tiny_model_dir), "local"), prompts(3))
    first, second = PipelineRunner(load_pipeline(path), Store(tmp_path / "store")).run()
    assert (first.rows, second.rows) == (3, 3)
    assert loads == [str(tiny_model_dir)]
    loads.clear()
    PipelineRunner(load_pipeline(path), Store(tmp_path / "store")).run()
    assert loads == []  # nothing to do: no model is loaded at all


@pytest.mark.slow
def test_engine_actors_are_shared_restarted_and_fail_with_the_reason(tmp_path, tiny_model_dir):
    import ray

    spec = ModelSpec(name=str(tiny_model_dir), dtype="float32", replicas=2)
    with shared.SharedEngines("ray") as engines:
        first = engines.for_stage({"model": spec})["model"]
        assert engines.for_stage({"judge": spec.model_copy()})["judge"] is first  # same settings, same actors
        expected = first.generate([[{"role": "user", "content": "hi"}]], GREEDY)[0].completions[0].text
        assert first.tokenizer is not None  # other attributes come from the actor
        for handle in first._handles:  # SIGKILL-like death of every replica: Ray restarts them
            ray.kill(handle, no_restart=False)
        after = [first.generate([[{"role": "user", "content": "hi"}]], GREEDY)[0].completions[0].text
                 for _ in range(2)]
        assert after == [expected, expected]
        pending = first._handles[0].generate.remote([[{"role": "user", "content": "hello"}]], GREEDY)
        ray.kill(first._handles[0], no_restart=False)  # dies with a call in flight: the call is retried
        assert ray.get(pending)[0].completions
    broken = tmp_path / "not-a-model"
    broken.mkdir()
    with shared.SharedEngines("ray") as engines, pytest.raises(FactoryError, match="not-a-model.*could not be started"):
        engines.for_stage({"model": ModelSpec(name=str(broken))})
    # An actor no node of this (local) cluster can hold fails at once, naming the request, instead of
    # waiting forever as Ray does (e.g. a GPU asked for on a CPU machine: vLLM's default once did).
    for asked, named in (({"num_gpus": 64}, "GPU 64"), ({"resources": {"judge_node": 1}}, "judge_node 1")):
        with shared.SharedEngines("ray") as engines, pytest.raises(FactoryError, match=f"asks for {named} "):
            engines.for_stage({"model": ModelSpec(name=str(tiny_model_dir), **asked)})
    # Engine actors hold their CPUs for the whole run: what they leave is all that later engines and
    # stage actors can have. Asking for more fails at once instead of waiting forever (a bench did).
    cpus = ray.cluster_resources()["CPU"]
    with shared.SharedEngines("ray") as engines:
        engines.for_stage({"model": ModelSpec(name=str(tiny_model_dir), num_cpus=cpus - 0.5)})
        engines.check_room({"CPU": 0.5}, "stages[0].resources")  # exactly what is left: fits
        with pytest.raises(FactoryError, match=r"stages\[1\]\.resources: a stage actor asks for CPU 0.75 \(of 0.5 left"):
            engines.check_room({"CPU": 0.75, "GPU": 0}, "stages[1].resources")
        with pytest.raises(FactoryError, match="asks for CPU 1 .*for its 1 replica"):
            engines.for_stage({"judge": ModelSpec(name=str(tiny_model_dir), num_cpus=1, max_batch_size=3)})


def test_the_ray_pipeline_uses_engine_actors(tmp_path, tiny_model_dir):
    path = write_pipeline(tmp_path, two_stage_pipeline(str(tiny_model_dir), "ray"), prompts(3))
    store = Store(tmp_path / "store")
    first, second = PipelineRunner(load_pipeline(path), store).run()
    assert (first.rows, second.rows, first.error_rows, second.error_rows) == (3, 3, 0, 0)
    assert first.completion_tokens > 0 and first.engine_seconds > 0  # accounting still per stage


def test_stages_run_in_what_the_engines_leave_or_fail_at_once(tmp_path, tiny_model_dir):
    import ray

    from factory.placement import ensure_ray

    ensure_ray()
    cpus = ray.cluster_resources()["CPU"]
    raw = generate_pipeline(str(tiny_model_dir), executor="ray", n=1)
    # The engine holds all but half a CPU: the stage's actor (0.25 CPU) runs in the rest. (Ray Data's
    # from_arrow asked for a whole CPU per block and so waited forever here: seen in bench_two_models.)
    raw["models"]["m"]["num_cpus"] = cpus - 0.5
    (summary,) = PipelineRunner(load_pipeline(write_pipeline(tmp_path, raw, prompts(2))), Store(tmp_path / "a")).run()
    assert (summary.rows, summary.error_rows) == (2, 0)
    # All but a tenth: the stage actor can never be placed, and the run says so instead of waiting.
    raw["models"]["m"]["num_cpus"] = cpus - 0.1
    path = write_pipeline(tmp_path, raw, prompts(2))
    with pytest.raises(FactoryError, match=r"stages\[0\]\.resources: a stage actor asks for CPU 0.25 \(of 0.1 left"):
        PipelineRunner(load_pipeline(path), Store(tmp_path / "b")).run()


def test_vllm_engine_actors_ask_for_no_gpu_with_vllms_cpu_build(monkeypatch):
    monkeypatch.setattr(spec_module, "vllm_is_cpu_build", lambda: True)
    monkeypatch.setattr(spec_module.importlib.util, "find_spec", lambda name: object())  # "vLLM is installed"
    assert ModelSpec(name="m", backend="vllm", tensor_parallel_size=2).gpus_per_replica() == 0
    monkeypatch.setattr(spec_module, "vllm_is_cpu_build", lambda: False)
    assert ModelSpec(name="m", backend="vllm", tensor_parallel_size=2).gpus_per_replica() == 2
    assert ModelSpec(name="m", backend="vllm", device="cpu").gpus_per_replica() == 0


def test_engines_asked_for_from_many_threads_at_once_load_whole_and_once(tmp_path, tiny_model_dir):
    """Streaming stages ask for their engines from their own threads at the same moment. transformers
    builds models on the meta device through process-wide patches, so concurrent loads used to leave
    one model with meta tensors ("Cannot copy out of meta tensor"), and both threads loaded the model."""
    import threading

    specs = [ModelSpec(name=str(tiny_model_dir), dtype="float32"),
             ModelSpec(name=str(tiny_model_dir), dtype="bfloat16")]  # two distinct engines
    start = threading.Barrier(6)
    got: list = []
    failures: list[BaseException] = []

    def ask(spec: ModelSpec) -> None:
        start.wait()
        try:
            got.append(engines.for_stage({"model": spec})["model"])
        except BaseException as exc:  # noqa: BLE001 - the test reports it below
            failures.append(exc)

    with shared.SharedEngines("local", thread_safe=True) as engines:
        threads = [threading.Thread(target=ask, args=(specs[i % 2],)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not failures, failures
        assert len({id(engine) for engine in got}) == 2  # one engine per distinct model
        for engine in {id(engine): engine for engine in got}.values():
            assert not any(param.is_meta for param in engine.engine.model.parameters())
            assert engine.generate([[{"role": "user", "content": "hi"}]], GREEDY)[0].completions

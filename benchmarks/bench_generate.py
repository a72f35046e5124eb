"""Factory overhead on generation (DESIGN.md §7): the `generate` stage through the factory
(Ray Data actor pool + store, and the in-process executor) vs the same engine called directly on
the same prompts and batches, in one run on one machine. Prints tokens/s and the ratios.

    .venv/bin/python -m benchmarks.bench_generate --prompts 64 --max-new-tokens 64 --batch-size 16
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
from pathlib import Path

import yaml

from factory.config import load_pipeline
from factory.engines import ModelSpec, SamplingParams, load_engine
from factory.placement import batches
from factory.runner import PipelineRunner
from factory.seeds import read_seed_file
from factory.store import Store

PROMPTS = Path(__file__).resolve().parents[1] / "examples" / "prompts.jsonl"


def write_inputs(folder: Path, count: int, args: argparse.Namespace) -> Path:
    base = [json.loads(line)["prompt"] for line in PROMPTS.read_text().splitlines()]
    with (folder / "prompts.jsonl").open("w") as handle:
        for i in range(count):
            handle.write(json.dumps({"id": f"b{i:04d}", "prompt": f"{base[i % len(base)]} (variant {i})"}) + "\n")
    config = {
        "name": "bench-generate",
        "models": {"m": {"name": args.model}},
        "stages": [{
            "stage": "generate", "input": {"seed": "prompts.jsonl"}, "model": "m",
            # Greedy, so both paths produce the same tokens and the comparison is like for like.
            "config": {"n": 1, "max_new_tokens": args.max_new_tokens, "temperature": 0},
            "resources": {"concurrency": 1, "num_cpus": args.cpus, "batch_size": args.batch_size},
        }],
    }
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def direct(args: argparse.Namespace, pipeline_path: Path) -> dict[str, float]:
    """Baseline: the engine called directly with the same batches, no factory around it."""
    pipeline = load_pipeline(pipeline_path)
    table = read_seed_file(pipeline.seed_path(pipeline.stages[0]))
    start = time.perf_counter()
    engine = load_engine(ModelSpec(name=args.model))
    loaded = time.perf_counter()
    sampling = SamplingParams(n=1, max_new_tokens=args.max_new_tokens, temperature=0)
    tokens, first_done, first_tokens = 0, None, 0
    for batch in batches(table, args.batch_size):
        conversations = [[{"role": "user", "content": p}] for p in batch.column("prompt").to_pylist()]
        done = sum(c.completion_tokens for g in engine.generate(conversations, sampling) for c in g.completions)
        tokens += done
        if first_done is None:
            first_done, first_tokens = time.perf_counter(), done
    end = time.perf_counter()
    del engine
    gc.collect()
    return {"tokens": tokens, "end_to_end": tokens / (end - start), "compute": tokens / (end - loaded),
            "steady": (tokens - first_tokens) / (end - first_done)}


def through_factory(args: argparse.Namespace, pipeline_path: Path, executor: str) -> dict[str, float]:
    """The factory: the runner with its executor, committing a shard per batch to a fresh store."""
    with tempfile.TemporaryDirectory() as store_dir:
        store = Store(store_dir)
        start = time.perf_counter()
        (summary,) = PipelineRunner(load_pipeline(pipeline_path), store, executor=executor).run()
        end = time.perf_counter()
        # Rows carry the time they were made; in time order, each run of batch_size rows is one batch.
        finished = store.sql(
            "SELECT max(epoch(created_at)) AS t, sum(completion_tokens)::BIGINT AS tokens FROM ("
            f"  SELECT *, (row_number() OVER (ORDER BY created_at) - 1) // {args.batch_size} AS batch"
            "  FROM responses) GROUP BY batch ORDER BY t"
        )
    times, tokens = finished["t"].to_list(), finished["tokens"].to_list()
    return {"tokens": summary.completion_tokens, "end_to_end": summary.completion_tokens / (end - start),
            "steady": sum(tokens[1:]) / (times[-1] - times[0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--cpus", type=float, default=2, help="CPUs (torch threads) of the stage actor")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = write_inputs(Path(folder), args.prompts, args)
        load_engine(ModelSpec(name=args.model))  # warm the file cache: no path pays for a cold disk
        base = direct(args, path)
        local_run = through_factory(args, path, "local")  # before Ray starts: its daemons stay up after
        ray_run = through_factory(args, path, "ray")
    print(f"generate: {args.prompts} prompts x {args.max_new_tokens} new tokens, batch {args.batch_size}, "
          f"model {args.model}")
    print(f"  direct engine     : {base['end_to_end']:7.1f} tok/s end to end (load included), "
          f"{base['compute']:7.1f} tok/s after load, {base['steady']:7.1f} tok/s steady")
    for label, run in (("factory, ray", ray_run), ("factory, local", local_run)):
        print(f"  {label:<18}: {run['end_to_end']:7.1f} tok/s end to end, {run['steady']:7.1f} tok/s steady "
              f"| ratio end to end {run['end_to_end'] / base['end_to_end']:.2f}, "
              f"steady {run['steady'] / base['steady']:.2f}  (target >= 0.95)")
    assert ray_run["tokens"] == local_run["tokens"] == base["tokens"], "the paths generated different token counts"


if __name__ == "__main__":
    main()

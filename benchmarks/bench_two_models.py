"""Two models at once (DESIGN.md §7): generate answers to N prompts with one model while a pairwise
judge scores them with another, each model in its own engine actor, streaming (the judge takes each
prompt's pair once the generator has committed it) vs the sequential runner (stage after stage, each
loading its model). Prints each mode's wall time, how much the two stages' working spans overlap,
and the ratios.

    .venv/bin/python -m benchmarks.bench_two_models                    # 256 prompts, executor ray
    .venv/bin/python -m benchmarks.bench_two_models --prompts 32

Both models are SmolLM2 (bundled); each engine gets one CPU thread (and reserves 0.75 CPU), as on a
cluster each model gets its own GPUs: run one at a time, the other model's share of the machine
sits idle, which is what streaming recovers. Targets: overlap >= 50% of the shorter stage, and
streaming end to end <= 0.7x the sequential mode.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import yaml
from rich.console import Console

from factory.config import load_pipeline
from factory.engines.metered import Span
from factory.runner import PipelineRunner, StageSummary
from factory.store import Store

PROMPTS = Path(__file__).resolve().parents[1] / "examples" / "prompts.jsonl"


def write_pipeline(folder: Path, args: argparse.Namespace) -> Path:
    base = [json.loads(line)["prompt"] for line in PROMPTS.read_text().splitlines()]
    lines = [json.dumps({"id": f"q{i:04d}", "prompt": f"{base[i % len(base)]} (variant {i})"})
             for i in range(args.prompts)]
    (folder / "prompts.jsonl").write_text("\n".join(lines) + "\n")
    engine = {"name": "smollm2-135m-instruct", "threads": 1, "num_cpus": 0.75}  # 0.5 CPU left for stage actors
    pipeline = {
        "name": "two-models", "executor": args.executor,
        # Two entries with different settings are two engines (here: the judge scores in larger batches).
        "models": {"writer": engine, "judge": {**engine, "max_batch_size": 32}},
        "stages": [
            {"stage": "generate", "name": "answers", "input": {"seed": "prompts.jsonl"}, "model": "writer",
             "config": {"n": 2, "max_new_tokens": args.max_new_tokens, "temperature": 0.7, "seed": 0},
             "resources": {"batch_size": args.batch_size}},
            {"stage": "judge", "input": {"dataset": "responses"}, "model": "judge",
             "config": {"strategy": "pairwise"}, "resources": {"batch_size": args.batch_size}},
        ],
    }
    path = folder / "two_models.yaml"
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    return path


def working_span(summary: StageSummary) -> Span:
    """From the stage's first model call to its last."""
    return summary.busy[0][0], summary.busy[-1][1]


def measure(path: Path, store: Path, streaming: bool) -> tuple[float, float]:
    runner = PipelineRunner(load_pipeline(path), Store(store), streaming=streaming, share_engines=streaming,
                            console=Console(stderr=True, quiet=True))
    start = time.perf_counter()
    answers, judge = runner.run()
    wall = time.perf_counter() - start
    (a_start, a_end), (j_start, j_end) = working_span(answers), working_span(judge)
    overlap = max(0.0, min(a_end, j_end) - max(a_start, j_start)) / min(a_end - a_start, j_end - j_start)
    return wall, overlap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--executor", choices=("ray", "local"), default="ray")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = write_pipeline(Path(folder), args)
        results = {}
        for label, streaming in (("sequential, a load per stage", False), ("streaming, shared engines", True)):
            results[label] = measure(path, Path(folder) / label.split(",")[0], streaming)
    print(f"generate {args.prompts} prompts x 2 answers -> pairwise judge ({args.executor}):")
    for label, (wall, overlap) in results.items():
        print(f"  {label:<30}: {wall:7.1f} s wall, stages overlap {overlap:5.1%} of the shorter one")
    (base, _), (new, overlap) = results.values()
    print(f"  ratio streaming / sequential: {new / base:.2f} (target <= 0.7); overlap {overlap:.0%} (target >= 50%)")


if __name__ == "__main__":
    main()

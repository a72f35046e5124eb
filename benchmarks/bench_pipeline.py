"""A whole pipeline, streaming with shared engines vs the runner before them (stage after stage,
each stage loading its models), in one run on one machine (DESIGN.md §7). Prints wall seconds,
the share of wall time spent in model calls, and the ratio. Training steps are left out.

    .venv/bin/python -m benchmarks.bench_pipeline                      # the quickstart, executor ray
    .venv/bin/python -m benchmarks.bench_pipeline --executor local --limit 4

Targets for the quickstart: streaming wall time <= 0.6x the sequential runner's, and >= 75% of
it in model calls.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import yaml
from rich.console import Console

from factory.config import load_pipeline
from factory.engines.metered import busy_seconds
from factory.runner import PipelineRunner
from factory.store import Store

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def without_training(source: Path, folder: Path) -> Path:
    config = yaml.safe_load(source.read_text())
    config.pop("train", None)
    for path in source.parent.glob("*.jsonl"):
        shutil.copy(path, folder / path.name)
    target = folder / source.name
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def measure(path: Path, store: Path, executor: str, limit: int | None, streaming: bool) -> tuple[float, float]:
    runner = PipelineRunner(load_pipeline(path), Store(store), limit=limit, executor=executor, streaming=streaming,
                            share_engines=streaming, console=Console(stderr=True, quiet=True))
    start = time.perf_counter()
    summaries = runner.run()
    wall = time.perf_counter() - start
    # Model time of the whole run: seconds in which some stage's model call ran (stages that ran
    # at once count once), so the share is at most 100%.
    return wall, busy_seconds(span for summary in summaries for span in summary.busy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", type=Path, default=EXAMPLES / "quickstart.yaml")
    parser.add_argument("--executor", choices=("ray", "local"), default="ray")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = without_training(args.pipeline, Path(folder))
        results = {}
        # Sequential first: a model conversion cache filled by the first run helps both alike.
        for label, streaming in (("sequential, a load per stage", False), ("streaming, shared engines", True)):
            results[label] = measure(path, Path(folder) / label.split(",")[0], args.executor, args.limit, streaming)
    print(f"{args.pipeline.name} ({args.executor}{f', --limit {args.limit}' if args.limit else ''}):")
    for label, (wall, model) in results.items():
        print(f"  {label:<30}: {wall:7.1f} s wall, {model:7.1f} s in model calls ({model / wall:5.1%} of wall)")
    (base, _), (new, model) = results.values()
    print(f"  ratio streaming / sequential: {new / base:.2f} (target <= 0.6); model share {model / new:.0%} "
          "(target >= 75%)")


if __name__ == "__main__":
    main()

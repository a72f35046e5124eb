"""Peak memory of a run over a large seed file vs a 5-row one, each in a fresh child process, and
the same run with --limit 5 (issue 16, item 4). The run is the real one (`PipelineRunner`, local
executor): the seed file is validated, loaded into the store and handed to a stage, which writes a
row per seed. The stage needs no model, so the figures are the seed path's alone.

    .venv/bin/python -m benchmarks.bench_seeds                    # 200,000 rows (~20 MB), about a minute
    .venv/bin/python -m benchmarks.bench_seeds --rows 1000000     # the issue's size (~100 MB), minutes

Targets: the large seed's peak RSS <= 2x the 5-row seed's; with --limit 5, about 1x and seconds.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from factory.stage import Stage
from schemas import BaseRow

LIMIT = 5
# ~100 bytes a line, as the seed (1M rows, 104 MB): a prompt and one extra field.
PROMPT = "Write a short answer to question {i} about the weather and the sea."


class PromptSize(BaseRow):
    characters: int


class PromptSizeStage(Stage):
    """A row-wise stage without a model: one row per seed, with its prompt's length."""

    Record = PromptSize
    default_output = "prompt_sizes"

    @classmethod
    def reads(cls, config: Any) -> list[str]:
        return ["id", "prompt"]

    def process(self, rows: list[dict[str, Any]]) -> list[PromptSize]:
        return [PromptSize(**self.lineage(row["id"]), characters=len(row["prompt"])) for row in rows]

    def failed_row(self, row: dict[str, Any], message: str) -> PromptSize:
        return PromptSize(**self.lineage(row["id"]), characters=0, error=message)


def write_case(folder: Path, rows: int) -> Path:
    folder.mkdir(parents=True)
    with (folder / "seeds.jsonl").open("w") as handle:
        for i in range(rows):
            handle.write(json.dumps({"prompt": PROMPT.format(i=i), "topic": f"topic-{i % 100}"}) + "\n")
    pipeline = {"name": "seeds", "executor": "local", "stages": [{
        "stage": "benchmarks.bench_seeds:PromptSizeStage", "input": {"seed": "seeds.jsonl"},
        "resources": {"batch_size": 5000},  # a commit per 5,000 rows: the store's cost stays small
    }]}
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    return path


def child(pipeline: Path, store: Path, limit: int | None) -> None:
    """One run in this (fresh) process; prints its rows, seconds and peak RSS as JSON."""
    from rich.console import Console

    from factory.config import load_pipeline
    from factory.runner import PipelineRunner
    from factory.store import Store

    start = time.perf_counter()
    (summary,) = PipelineRunner(load_pipeline(pipeline), Store(store), limit=limit,
                                console=Console(stderr=True, quiet=True)).run()
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"rows": summary.rows, "seconds": seconds, "peak_mib": peak_kib / 1024}))


def measure(pipeline: Path, store: Path, limit: int | None) -> dict[str, float]:
    command = [sys.executable, "-m", "benchmarks.bench_seeds", "--child", str(pipeline), str(store)]
    if limit is not None:
        command += ["--limit", str(limit)]
    result = subprocess.run(command, capture_output=True, text=True, check=False,
                            cwd=Path(__file__).resolve().parents[1])
    if result.returncode != 0:
        raise SystemExit(f"child run failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the large seed (the issue: 1000000)")
    parser.add_argument("--child", nargs=2, type=Path, metavar=("PIPELINE", "STORE"), help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.limit)
        return
    with tempfile.TemporaryDirectory() as folder:
        small = write_case(Path(folder) / "small", LIMIT)
        large = write_case(Path(folder) / "large", args.rows)
        size_mb = (large.parent / "seeds.jsonl").stat().st_size / 1e6
        print(f"seed files: {LIMIT} rows; {args.rows:,} rows ({size_mb:.1f} MB); each run in a fresh process")
        labels = (f"{LIMIT}-row seed", f"{args.rows:,}-row seed", f"{args.rows:,}-row seed, --limit {LIMIT}")
        width = max(map(len, labels))
        base = measure(small, Path(folder) / "small-store", None)
        print(f"  {labels[0]:<{width}} : peak RSS {base['peak_mib']:7.1f} MiB, {base['seconds']:6.1f} s, "
              f"{base['rows']:,} rows out (the baseline)")
        for label, limit in zip(labels[1:], (None, LIMIT)):
            result = measure(large, Path(folder) / f"store-{limit}", limit)
            print(f"  {label:<{width}} : peak RSS {result['peak_mib']:7.1f} MiB, {result['seconds']:6.1f} s, "
                  f"{result['rows']:,} rows out | RSS ratio {result['peak_mib'] / base['peak_mib']:.2f} "
                  f"(target <= 2), time ratio {result['seconds'] / base['seconds']:.2f}")


if __name__ == "__main__":
    main()

"""Store overhead (DESIGN.md §7): `Store` vs plain pyarrow/DuckDB on the same Parquet files,
in one run. Append 1M rows in 10k-row shards, a grouped query over them, and the resume
anti-join of 1M new ids against the 1M stored. Prints both timings and the ratios (target <= 1.2).

    .venv/bin/python -m benchmarks.bench_store --rows 1000000 --shard-rows 10000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from factory.store import Store


def make_shards(rows: int, shard_rows: int, prefix: str) -> list[pa.Table]:
    rng = np.random.default_rng(0)
    shards = []
    for start in range(0, rows, shard_rows):
        n = min(shard_rows, rows - start)
        ids = np.char.add(prefix, np.arange(start, start + n).astype(str))
        shards.append(pa.table({
            "id": pa.array(ids), "parent_id": pa.array(ids),
            "stage": pa.array(rng.choice(["a", "b", "c", "d"], n)),
            "completion_tokens": pa.array(rng.integers(1, 512, n)),
            "score": pa.array(rng.random(n)),
        }))
    return shards


def best(runs: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times) if runs > 1 else statistics.mean(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shard-rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    shards = make_shards(args.rows, args.shard_rows, "row-")
    # Half the new ids are already stored, so the anti-join has real work to do.
    numbers = np.arange(args.rows).astype(str)
    new = pa.table({"id": np.where(np.arange(args.rows) % 2 == 0, np.char.add("row-", numbers), np.char.add("new-", numbers))})
    grouped = "SELECT stage, count(*) AS n, sum(completion_tokens) AS tokens, avg(score) AS score FROM {} GROUP BY stage"

    with tempfile.TemporaryDirectory() as folder:
        plain_dir = Path(folder) / "plain" / "d"
        plain_dir.mkdir(parents=True)
        store = Store(Path(folder) / "store")

        def plain_append():
            for i, shard in enumerate(shards):
                pq.write_table(shard, plain_dir / f"part-{i:06d}.parquet")

        append_plain = best(1, plain_append)
        append_store = best(1, lambda: [store.append("d", shard) for shard in shards])

        glob = f"read_parquet('{plain_dir}/*.parquet')"
        connection = duckdb.connect()
        query_plain = best(args.repeats, lambda: connection.sql(grouped.format(glob)).fetchall())
        query_store = best(args.repeats, lambda: store.sql(grouped.format("d")))

        connection.register("new_rows", new)
        anti = f"SELECT n.* FROM new_rows n ANTI JOIN (SELECT parent_id FROM {glob}) s ON n.id = s.parent_id"
        anti_plain = best(args.repeats, lambda: connection.sql(anti).to_arrow_table())
        anti_store = best(args.repeats, lambda: store.without_done("d", new))
        assert store.without_done("d", new).num_rows == connection.sql(anti).to_arrow_table().num_rows

    print(f"store: {args.rows:,} rows in {args.rows // args.shard_rows} shards of {args.shard_rows:,}")
    for label, plain, ours, unit in (
        ("append", append_plain, append_store, f"{args.rows / append_store:,.0f} rows/s"),
        ("grouped query", query_plain, query_store, f"{query_store * 1000:.0f} ms"),
        ("resume anti-join", anti_plain, anti_store, f"{anti_store * 1000:.0f} ms"),
    ):
        print(f"  {label:<17}: store {ours * 1000:8.1f} ms ({unit}), plain {plain * 1000:8.1f} ms "
              f"-> ratio {ours / plain:.2f} (target <= 1.2)")


if __name__ == "__main__":
    main()

"""Store overhead (DESIGN.md §7), every ratio measured in one run on the same machine and data.

1. Append 1M rows in 10k-row commits: the Delta store vs the landed Parquet-shard writer
   (`pq.write_table` to a temporary name + atomic rename). Target: throughput ratio >= 0.8.
2. A grouped query and the resume anti-join (1M new ids, half stored, vs 1M stored): the store vs
   plain DuckDB `read_parquet` over the same files. Target: time ratio <= 1.2.
3. After 20,000 one-row commits: `count(*)` and the anti-join with the automatic compaction on, and
   with it off, vs the same rows compacted into one file. Target: <= 3x the compacted figure.

Timed sides alternate and medians are reported (the machines are shared and noisy):

    .venv/bin/python -m benchmarks.bench_store            # the issue's sizes: well over 20 minutes on 2 cores
    .venv/bin/python -m benchmarks.bench_store --rows 200000 --small-commits 2000   # a quick look
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import factory.store as store_module
from factory.store import Store


def make_table(rows: int, prefix: str) -> pa.Table:
    rng = np.random.default_rng(0)
    ids = np.char.add(prefix, np.arange(rows).astype(str))
    return pa.table({
        "id": pa.array(ids), "parent_id": pa.array(ids),
        "stage": pa.array(rng.choice(["a", "b", "c", "d"], rows)),
        "completion_tokens": pa.array(rng.integers(1, 512, rows)),
        "score": pa.array(rng.random(rows)),
    })


def new_ids(rows: int, prefix: str) -> pa.Table:
    """Half of them already stored, so the anti-join has real work to do."""
    numbers = np.arange(rows).astype(str)
    return pa.table({"id": np.where(np.arange(rows) % 2 == 0, np.char.add(prefix, numbers), np.char.add("new-", numbers))})


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def alternate(repeats: int, ours: Callable[[], object], theirs: Callable[[], object]) -> tuple[float, float]:
    """Medians of `repeats` alternating runs of each side (after one warm-up of each)."""
    ours(), theirs()
    times_ours, times_theirs = [], []
    for _ in range(repeats):
        times_ours.append(timed(ours))
        times_theirs.append(timed(theirs))
    return statistics.median(times_ours), statistics.median(times_theirs)


def plain_sql(files: list[str], query: str, new: pa.Table | None = None) -> Callable[[], object]:
    def run() -> object:
        connection = duckdb.connect()  # a connection per query, as the store opens one
        connection.execute(f"CREATE VIEW d AS SELECT * FROM read_parquet({files!r})")
        if new is not None:
            connection.register("new_rows", new)
        return connection.sql(query).fetchall()
    return run


GROUPED = "SELECT stage, count(*) AS n, sum(completion_tokens) AS tokens, avg(score) AS score FROM d GROUP BY stage"
ANTI = "SELECT count(*) FROM new_rows ANTI JOIN (SELECT parent_id FROM d) s ON new_rows.id = s.parent_id"
COUNT = "SELECT count(*) AS n FROM d"


def bench_large(folder: Path, rows: int, commit_rows: int, repeats: int) -> list[tuple[str, float, float, str]]:
    table = make_table(rows, "row-")
    batches = [table.slice(start, commit_rows) for start in range(0, rows, commit_rows)]
    appends_store, appends_plain = [], []
    for attempt in range(3):  # alternate whole 1M-row appends, fresh folders each time
        store = Store(folder / f"store-{attempt}")
        plain = folder / f"plain-{attempt}"
        plain.mkdir()

        def append_plain() -> None:
            for i, batch in enumerate(batches):
                pq.write_table(batch, plain / f"part-{i:06d}.parquet.tmp")
                os.replace(plain / f"part-{i:06d}.parquet.tmp", plain / f"part-{i:06d}.parquet")

        appends_store.append(timed(lambda: [store.append("d", batch) for batch in batches]))
        appends_plain.append(timed(append_plain))
    append_store, append_plain = statistics.median(appends_store), statistics.median(appends_plain)
    files = store.files("d")
    new = new_ids(rows, "row-")
    query_store, query_plain = alternate(repeats, lambda: store.sql(GROUPED), plain_sql(files, GROUPED))
    anti_store, anti_plain = alternate(repeats, lambda: store.without_done("d", new), plain_sql(files, ANTI, new))
    assert store.without_done("d", new).num_rows == plain_sql(files, ANTI, new)()[0][0]
    return [
        (f"append {rows:,} rows in {commit_rows:,}-row commits", append_store, append_plain,
         f"{rows / append_store:,.0f} rows/s vs {rows / append_plain:,.0f}; throughput ratio "
         f"{append_plain / append_store:.2f} (target >= 0.8)"),
        ("grouped query", query_store, query_plain, f"time ratio {query_store / query_plain:.2f} (target <= 1.2)"),
        ("resume anti-join", anti_store, anti_plain, f"time ratio {anti_store / anti_plain:.2f} (target <= 1.2)"),
    ]


def bench_small_commits(folder: Path, commits: int, repeats: int) -> list[tuple[str, float, float, str]]:
    rows = make_table(commits, "small-")
    new = new_ids(commits, "small-")
    stores = {}
    for label, auto in (("auto-compacted", True), ("never compacted", False)):
        if not auto:
            store_module.AUTO_COMPACT_EVERY = 10**9
        store = stores[label] = Store(folder / label.replace(" ", "-"))
        for i in range(commits):
            store.append("d", rows.slice(i, 1))
    store_module.AUTO_COMPACT_EVERY = 32
    one_file = Store(folder / "one-file")
    one_file.append("d", rows)
    results = []
    for label, store in stores.items():
        count_ours, count_one = alternate(repeats, lambda: store.sql(COUNT), lambda: one_file.sql(COUNT))
        anti_ours, anti_one = alternate(repeats, lambda: store.without_done("d", new),
                                        lambda: one_file.without_done("d", new))
        files = len(store.files("d"))
        for what, ours, one in (("count(*)", count_ours, count_one), ("resume anti-join", anti_ours, anti_one)):
            target = " (target <= 3)" if label == "auto-compacted" else ""
            results.append((f"{commits:,} one-row commits, {label} ({files} files): {what}", ours, one,
                            f"vs one file: ratio {ours / one:.2f}{target}"))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--commit-rows", type=int, default=10_000)
    parser.add_argument("--small-commits", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        # Printed as each part ends, so a run cut short still reports what it measured.
        report(bench_large(Path(folder), args.rows, args.commit_rows, args.repeats))
        report(bench_small_commits(Path(folder), args.small_commits, args.repeats))


def report(results: list[tuple[str, float, float, str]]) -> None:
    for label, ours, baseline, verdict in results:
        print(f"{label}: store {ours * 1000:9.1f} ms, baseline {baseline * 1000:9.1f} ms -> {verdict}", flush=True)


if __name__ == "__main__":
    main()

"""Sentence-embedding helpers: near-duplicate groups (skill merging, dedup) and a diversity report.

Report from the command line, on any data set with a text column:

    python -m generators.skillmix.diversity --store factory-data --dataset instructions
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

CHUNK = 2048  # rows per block of the similarity matrix: memory stays O(CHUNK * n)


@lru_cache(maxsize=2)
def _encoder(model: str):
    from sentence_transformers import SentenceTransformer

    from factory.models import LOADING, resolve_model

    with LOADING:
        return SentenceTransformer(resolve_model(model), device="cpu")


def embed(texts: Sequence[str], model: str = "minilm-l6") -> np.ndarray:
    """Unit-length embeddings (rows), so a dot product is the cosine similarity."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    vectors = _encoder(model).encode(list(texts), batch_size=64, normalize_embeddings=True,
                                     show_progress_bar=False, convert_to_numpy=True)
    return np.asarray(vectors, dtype=np.float32)


def near_duplicate_groups(vectors: np.ndarray, threshold: float) -> list[int]:
    """Greedy grouping in row order: each row joins the first earlier kept row with cosine >=
    threshold, else starts its own group. Returns, per row, the index of its group's first row.

    Callers order rows by priority (most frequent first; earliest example first), so the kept
    representative of each group is the one they prefer.
    """
    leaders: list[int] = []
    group = list(range(len(vectors)))
    for row in range(len(vectors)):
        if leaders:
            similarity = vectors[leaders] @ vectors[row]
            best = int(np.argmax(similarity))
            if similarity[best] >= threshold:
                group[row] = leaders[best]
                continue
        leaders.append(row)
    return group


@dataclass
class DiversityReport:
    rows: int
    mean_cosine: float  # mean over all pairs of distinct rows; lower is more diverse
    near_duplicate_pairs: int  # pairs with cosine >= threshold
    near_duplicate_rows: int  # rows that dropping near-duplicates would remove
    threshold: float


def diversity_report(vectors: np.ndarray, threshold: float = 0.9) -> DiversityReport:
    n = len(vectors)
    total, pairs = 0.0, 0
    for start in range(0, n, CHUNK):
        block = vectors[start:start + CHUNK] @ vectors.T
        for offset in range(block.shape[0]):
            row = start + offset
            upper = block[offset, row + 1:]  # each unordered pair once
            total += float(upper.sum())
            pairs += int((upper >= threshold).sum())
    count = n * (n - 1) // 2
    groups = near_duplicate_groups(vectors, threshold)
    dropped = sum(1 for row, leader in enumerate(groups) if leader != row)
    return DiversityReport(n, total / count if count else 0.0, pairs, dropped, threshold)


def main(argv: Sequence[str] | None = None) -> int:
    from factory.errors import FactoryError
    from factory.store import Store, check_dataset_name, quote_identifier

    parser = argparse.ArgumentParser(prog="python -m generators.skillmix.diversity",
                                     description="Mean pairwise cosine similarity and near-duplicates of a text column.")
    parser.add_argument("--store", default="factory-data", help="store folder or fsspec URL")
    parser.add_argument("--dataset", default="instructions")
    parser.add_argument("--column", default="instruction")
    parser.add_argument("--where", default="error IS NULL", help="SQL predicate selecting rows")
    parser.add_argument("--threshold", type=float, default=0.9, help="cosine at or above which rows are near-duplicates")
    parser.add_argument("--model", default="minilm-l6", help="sentence-transformers model (bundled name or folder)")
    args = parser.parse_args(argv)
    try:
        store = Store(args.store)
        check_dataset_name(args.dataset)
        if not store.has(args.dataset):
            raise FactoryError(f"no data set {args.dataset!r} in store {store.location}")
        where = f" WHERE {args.where}" if args.where else ""
        frame = store.sql(f"SELECT {quote_identifier(args.column)} AS text FROM {quote_identifier(args.dataset)}"
                          f"{where} ORDER BY id")
    except FactoryError as exc:
        print(f"diversity: error: {exc}", file=sys.stderr)
        return 2
    texts = [text for text in frame["text"].to_list() if text]
    report = diversity_report(embed(texts, args.model), args.threshold)
    print(json.dumps(asdict(report), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

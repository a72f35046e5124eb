"""Sentence-embedding helpers: near-duplicate groups (skill merging, dedup) and a diversity report.

Report from the command line, on any data set with a text column (generators/offline/diversity.py):

    python -m generators.offline.diversity --store factory-data --dataset instructions
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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

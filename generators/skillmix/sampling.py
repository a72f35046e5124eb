"""Drawing the examples: k distinct skills (uniform), one query type (cycled), shirkers (exact share).

Every draw is a pure function of the seed and the example's index, so the same seed always gives
the same combinations, and raising `num_examples` keeps the first examples as they were (only the
shirker choice, an exact share of the whole, depends on the total).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from factory.ids import stable_hash


@dataclass(frozen=True)
class QueryType:
    name: str
    definition: str | None = None

    @property
    def prompt_text(self) -> str:
        return f"{self.name}: {self.definition}" if self.definition else self.name


@dataclass(frozen=True)
class Draw:
    index: int
    skills: tuple[str, ...]
    query_type: QueryType
    shirker: bool


def _rng(seed: int, *parts: object) -> np.random.Generator:
    return np.random.default_rng(int(stable_hash(seed, *parts, length=15), 16))


def draw_skills(skills: list[str], k: int, seed: int, index: int) -> tuple[str, ...]:
    """k distinct skills, every k-subset equally likely; their order shuffled too (it is the prompt's)."""
    picked = _rng(seed, "skills", index).choice(len(skills), size=k, replace=False)
    return tuple(skills[i] for i in picked)


def draw_query_type(types: list[QueryType], seed: int, index: int, balanced: bool) -> QueryType:
    """Balanced: every block of len(types) consecutive examples uses each type once, in a seeded
    order, so counts differ by at most one. Otherwise: uniform at random."""
    if not balanced:
        return types[int(_rng(seed, "type", index).integers(len(types)))]
    block, position = divmod(index, len(types))
    return types[int(_rng(seed, "types", block).permutation(len(types))[position])]


def shirker_indices(num_examples: int, fraction: float, seed: int) -> set[int]:
    """Exactly round(fraction * num_examples) indices, chosen with the seed."""
    count = round(fraction * num_examples)
    return {int(i) for i in _rng(seed, "shirkers", num_examples).choice(num_examples, size=count, replace=False)}


def draw_examples(skills: list[str], types: list[QueryType], num_examples: int, k: int, seed: int,
                  balanced: bool = True, shirker_fraction: float = 0.0) -> list[Draw]:
    if k > len(skills):
        raise ValueError(f"k={k} distinct skills per example, but only {len(skills)} skills are available")
    if not types:
        raise ValueError("no query types to draw from")
    skills = sorted(set(skills))  # the input order must not change the draws
    types = sorted(set(types), key=lambda t: t.name)
    shirkers = shirker_indices(num_examples, shirker_fraction, seed)
    return [
        Draw(index, draw_skills(skills, k, seed, index), draw_query_type(types, seed, index, balanced),
             index in shirkers)
        for index in range(num_examples)
    ]

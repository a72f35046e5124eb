from collections import Counter

import pytest
from scipy.stats import chisquare

from generators.skillmix.sampling import QueryType, draw_examples, shirker_indices

SKILLS = [f"skill_{i:02d}" for i in range(20)]
TYPES = [QueryType(name, f"{name} queries") for name in ("Information-Seeking", "Help-Seeking", "Planning")]


def test_same_seed_same_combinations_and_other_seed_differs():
    first = draw_examples(SKILLS, TYPES, 50, 2, seed=7)
    assert first == draw_examples(list(reversed(SKILLS)), list(reversed(TYPES)), 50, 2, seed=7)
    assert [d.skills for d in first] != [d.skills for d in draw_examples(SKILLS, TYPES, 50, 2, seed=8)]


def test_more_examples_keep_the_first_draws():
    short = draw_examples(SKILLS, TYPES, 10, 3, seed=1)
    long = draw_examples(SKILLS, TYPES, 30, 3, seed=1)
    assert [(d.skills, d.query_type) for d in short] == [(d.skills, d.query_type) for d in long[:10]]


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_every_combination_has_k_distinct_skills(k):
    for draw in draw_examples(SKILLS, TYPES, 300, k, seed=3):
        assert len(draw.skills) == k == len(set(draw.skills))
        assert set(draw.skills) <= set(SKILLS)


def test_skill_frequencies_are_uniform_by_chi_square():
    draws = draw_examples(SKILLS, TYPES, 4000, 2, seed=11)
    counts = Counter(skill for draw in draws for skill in draw.skills)
    observed = [counts[s] for s in SKILLS]
    assert sum(observed) == 8000
    assert chisquare(observed).pvalue > 0.01
    # pairs too: every unordered pair about equally likely (190 pairs, 4000 draws)
    pairs = Counter(frozenset(d.skills) for d in draws)
    assert len(pairs) == 190 and chisquare(list(pairs.values())).pvalue > 0.01


def test_query_types_are_balanced_within_one():
    for n in (3, 10, 31, 100):
        counts = Counter(d.query_type.name for d in draw_examples(SKILLS, TYPES, n, 2, seed=5))
        assert sum(counts.values()) == n and max(counts.values()) - min(counts.values()) <= 1


def test_unbalanced_types_are_drawn_at_random():
    counts = Counter(d.query_type.name for d in draw_examples(SKILLS, TYPES, 3000, 2, seed=5, balanced=False))
    assert chisquare(list(counts.values())).pvalue > 0.01 and len(counts) == 3


@pytest.mark.parametrize("n,fraction", [(10, 0.2), (7, 0.5), (100, 0.2), (5, 0.0), (4, 1.0), (33, 0.15)])
def test_shirker_fraction_is_exact(n, fraction):
    draws = draw_examples(SKILLS, TYPES, n, 2, seed=2, shirker_fraction=fraction)
    assert sum(d.shirker for d in draws) == round(fraction * n)
    assert shirker_indices(n, fraction, 2) == shirker_indices(n, fraction, 2)


def test_k_larger_than_the_skill_list_is_refused():
    with pytest.raises(ValueError, match="k=3 distinct skills per example, but only 2"):
        draw_examples(["a", "b"], TYPES, 5, 3, seed=0)

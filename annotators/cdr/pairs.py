"""On-policy preference pairs from CDR rewards, one per prompt (stage `cdr_pairs`, annotators/cdr/stages.py).

chosen = argmax reward; rejected = a random non-max response (or argmin); prompts whose rewards
are all equal (max == min) give no pair (arXiv 2411.02481). A response with the chosen one's text is
never the rejected one (a pair of identical texts teaches nothing, whatever rounding made of their
rewards).
"""

from __future__ import annotations

import random
from typing import Literal


def build_pair(rewards: list[float], rule: Literal["random", "argmin"], rng: random.Random,
               texts: list[str] | None = None) -> tuple[int, int] | None:
    """(chosen index, rejected index), or None when every reward ties (nothing to prefer) or every
    lower-reward response has the chosen response's text."""
    if len(rewards) < 2:
        return None
    best, worst = max(rewards), min(rewards)
    if best == worst:
        return None
    chosen = rewards.index(best)
    # Every response below the max is a candidate (ties with the max are not "non-max"), unless it is
    # the chosen text again.
    candidates = [i for i, r in enumerate(rewards) if r < best and (texts is None or texts[i] != texts[chosen])]
    if not candidates:
        return None
    if rule == "argmin":
        return chosen, min(candidates, key=lambda i: rewards[i])
    return chosen, rng.choice(candidates)

"""HelpSteer2-Preference strength (-3..+3) between two responses to a prompt, judged in both orders
(position bias): the scale, the prompt and the maths of stage `helpsteer_preference` (stages.py).

The scale is the HelpSteer2-Preference data card's seven points, 0 ("about the same") included:
without it a judge that finds two responses equal must still pick a side, which inflates
|strength| and so the scaled-BT weight. Strength in each order is the expectation over the
normalised probabilities of the seven answers '-3' .. '3'; the reverse order's value is negated
back to (1, 2) terms, the two are averaged and rounded into `preference_strength` (0 when the
average is within 0.5 of a tie).
"""

from __future__ import annotations

import math

STRENGTHS = [-3, -2, -1, 0, 1, 2, 3]

# The data card's wording, line for line (nvidia/HelpSteer2, "Preferences").
SCALE = """-3: Response 1 is much better than Response 2
-2: Response 1 is better than Response 2
-1: Response 1 is slightly better than Response 2
0: Response 1 is about the same as Response 2
1: Response 2 is slightly better than Response 1
2: Response 2 is better than Response 1
3: Response 2 is much better than Response 1"""


def preference_prompt(prompt: str, first: str, second: str, justify: bool) -> str:
    task = ("Explain in two or three sentences which response is better and why."
            if justify else "Answer with one number from the scale and nothing else.")
    return (
        "Compare two responses to the same prompt for overall helpfulness, correctness and clarity.\n\n"
        f"[Prompt]\n{prompt}\n[End of prompt]\n\n[Response 1]\n{first}\n[End of response 1]\n\n"
        f"[Response 2]\n{second}\n[End of response 2]\n\nScale:\n{SCALE}\n\n{task}"
    )


def expected_strength(probabilities: list[float]) -> float:
    total = sum(probabilities)
    if total <= 0:
        raise ValueError("every strength option has probability 0")
    return sum(s * p for s, p in zip(STRENGTHS, probabilities, strict=True)) / total


def round_strength(value: float) -> int:
    """The nearest point of the -3..3 scale; halves go away from zero, so rounding is the same for
    either response (half-to-even would pull +0.5 and -1.5 alike towards an even number)."""
    return max(-3, min(3, int(math.copysign(math.floor(abs(value) + 0.5), value))))


def combine(forward: float, reverse_flipped: float) -> tuple[int, bool]:
    """(preference strength, position consistent) from both orders, in (1, 2) terms."""
    return round_strength((forward + reverse_flipped) / 2), (forward > 0) == (reverse_flipped > 0)

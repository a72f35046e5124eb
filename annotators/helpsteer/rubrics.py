"""HelpSteer2 attributes (arXiv 2406.08673), a 0-4 rubric for each, and the rating prompt."""

from __future__ import annotations

from schemas.ratings import ATTRIBUTES

# Definitions follow the HelpSteer2 annotation guidelines; the anchors are ours.
RUBRICS: dict[str, str] = {
    "helpfulness": (
        "Helpfulness: the overall helpfulness of the response to the prompt.\n"
        "4: fully answers the prompt and is very useful; 3: mostly helpful with minor gaps; "
        "2: partially helpful, misses important parts; 1: barely helpful; 0: not helpful at all or harmful."
    ),
    "correctness": (
        "Correctness: the response includes all pertinent facts, without errors or hallucinations.\n"
        "4: completely correct and complete; 3: mostly correct, small omissions; 2: a mix of correct and "
        "incorrect or missing information; 1: mostly incorrect; 0: entirely incorrect or irrelevant."
    ),
    "coherence": (
        "Coherence: the consistency and clarity of expression.\n"
        "4: perfectly clear and self-consistent; 3: mostly clear; 2: somewhat unclear or contradictory in "
        "places; 1: very unclear; 0: incomprehensible."
    ),
    "complexity": (
        "Complexity: the intellectual depth needed to write the response (not whether the prompt was hard).\n"
        "4: needs deep domain expertise; 3: needs a specialised vocabulary or college-level knowledge; "
        "2: needs a high-school education; 1: simple language anyone can follow; 0: basic, a child could write it."
    ),
    "verbosity": (
        "Verbosity: the amount of detail in the response relative to what the prompt asks for.\n"
        "4: very long and detailed, more than asked; 3: fairly long; 2: average length; "
        "1: short; 0: terse, the bare minimum."
    ),
}

EXPECTATION_TASK = "Answer with a single digit from 0 to 4 and nothing else."
GENERATE_TASK = ("Explain your rating in one or two sentences, then finish with a last line of the form "
                 "'Score: N' where N is a digit from 0 to 4.")


def rating_prompt(attribute: str, prompt: str, response: str, rubric: str | None = None, generative: bool = False) -> str:
    """The user message asking for one attribute's 0-4 score of `response` to `prompt`."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r} (choose from {', '.join(ATTRIBUTES)})")
    return (
        "Rate the assistant's response to the user's prompt on one attribute.\n\n"
        f"{rubric or RUBRICS[attribute]}\n\n"
        f"[Prompt]\n{prompt}\n[End of prompt]\n\n[Response]\n{response}\n[End of response]\n\n"
        f"{GENERATE_TASK if generative else EXPECTATION_TASK}"
    )


def expectation(probabilities: list[float]) -> float:
    """Expected score over the options '0'..'4', normalised over the five (always in [0, 4])."""
    total = sum(probabilities)
    if total <= 0:
        raise ValueError("every score option has probability 0")
    return sum(score * p for score, p in enumerate(probabilities)) / total

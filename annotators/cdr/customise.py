"""CDR customisation: a criteria system prompt and in-context exemplars around the query
(arXiv 2411.02481). Both models score the response under the same conversation, so the criteria
shift the strong/weak density ratio toward what the criteria reward.

Layout `user_turn` (default) follows the reference code (gx-ai-architect/CDR-preference-annotation,
`scripts/run_bon_scoring.py`): the criteria are the system prompt, and the user turn is
`fewshot + "\\n" + query + "\\nGood Assistant:"`, the few-shot text listing each exemplar as
`User:` / `Good Assistant:` / `Bad Assistant:` / `Explanation:` lines and ending in `User:`.
Layout `system` (this factory's first layout) puts criteria and exemplars together in the system
prompt and leaves the query alone in the user turn.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from factory.engines import Conversation
from factory.ids import stable_hash

Domain = Literal["SAFETY", "REASONING", "CHAT"]
DOMAINS: tuple[Domain, ...] = ("SAFETY", "REASONING", "CHAT")
Layout = Literal["user_turn", "system"]


class Exemplar(BaseModel):
    """One in-context example: a query, a good and a bad answer, and why the good one is better."""

    model_config = ConfigDict(extra="forbid")

    user: str = Field(description="The example query.")
    good: str = Field(description="A response that meets the criteria ('Good Assistant').")
    bad: str = Field(description="A response that does not ('Bad Assistant').")
    explanation: str = Field(default="", description="Why the good response is better ('Explanation').")


class Customisation(BaseModel):
    """What is put around the query for one domain."""

    model_config = ConfigDict(extra="forbid")

    criteria: str | None = Field(default=None, description="System prompt stating what a good response is.")
    exemplars: list[Exemplar] = Field(default_factory=list, description="In-context examples.")
    exemplar_intro: str = Field(
        default="For example,", description="user_turn layout: line in front of the exemplars (the reference's "
        "pools open with an instruction and 'For example,').")
    fewshot: str | None = Field(
        default=None, description="user_turn layout: verbatim few-shot text used instead of rendering `exemplars` "
        "(e.g. one of the reference's pools, ending in 'User:').")


def fewshot_text(custom: Customisation) -> str | None:
    """The reference's few-shot block: exemplars as labelled lines, ending in 'User:' for the query."""
    if custom.fewshot:
        return custom.fewshot
    if not custom.exemplars:
        return None
    lines = [custom.exemplar_intro] if custom.exemplar_intro else []
    for example in custom.exemplars:
        lines += ["User:", example.user, "Good Assistant:", example.good, "Bad Assistant:", example.bad]
        if example.explanation:
            lines += ["Explanation:", example.explanation]
    return "\n".join(lines + ["User:"])


def system_message(custom: Customisation) -> str | None:
    """Layout `system`: criteria, then the exemplars as User / Good Assistant / Bad Assistant / Explanation."""
    parts = [custom.criteria.strip()] if custom.criteria and custom.criteria.strip() else []
    if custom.exemplars:
        blocks = []
        for example in custom.exemplars:
            block = (f"User: {example.user}\nGood Assistant: {example.good}\nBad Assistant: {example.bad}")
            if example.explanation:
                block += f"\nExplanation: {example.explanation}"
            blocks.append(block)
        parts.append("Examples of good and bad responses:\n\n" + "\n\n".join(blocks))
    return "\n\n".join(parts) or None


def criteria_message(custom: Customisation) -> str | None:
    return custom.criteria.strip() if custom.criteria and custom.criteria.strip() else None


def conversation(system: str | None, prompt: str) -> Conversation:
    head = [{"role": "system", "content": system}] if system else []
    return head + [{"role": "user", "content": prompt}]


def build_conversation(custom: Customisation, prompt: str, layout: Layout,
                       system_override: str | None = None) -> Conversation:
    """The conversation a model scores the response under; `system_override` replaces the system turn
    (the weak model's `weak_system_prompt`)."""
    if layout == "system":
        return conversation(system_override or system_message(custom), prompt)
    shots = fewshot_text(custom)
    user = f"{shots}\n{prompt}\nGood Assistant:" if shots else prompt
    return conversation(system_override or criteria_message(custom), user)


def template_tag(custom: Customisation, weak_system: str | None, layout: Layout = "user_turn") -> str:
    """Recorded in `template`: which text was put around the query, as a short hash."""
    if layout == "system":  # the first layout keeps its v1 tags, so old rows still match
        return f"cdr/v1:{stable_hash(custom.model_dump(mode='json', include={'criteria', 'exemplars'}), weak_system or '', length=8)}"
    return f"cdr/v2:{stable_hash(custom.model_dump(mode='json'), weak_system or '', layout, length=8)}"

"""CDR customisation: a criteria system prompt and in-context exemplars put in front of the query
(arXiv 2411.02481). Both models score the response under the same conversation, so the criteria
shift the strong/weak density ratio toward what the criteria reward."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from factory.engines import Conversation
from factory.ids import stable_hash

Domain = Literal["SAFETY", "REASONING", "CHAT"]
DOMAINS: tuple[Domain, ...] = ("SAFETY", "REASONING", "CHAT")


class Exemplar(BaseModel):
    """One in-context example: a query, a good and a bad answer, and why the good one is better."""

    model_config = ConfigDict(extra="forbid")

    user: str = Field(description="The example query.")
    good: str = Field(description="A response that meets the criteria ('Good Assistant').")
    bad: str = Field(description="A response that does not ('Bad Assistant').")
    explanation: str = Field(default="", description="Why the good response is better ('Explanation').")


class Customisation(BaseModel):
    """What is put in front of the query for one domain."""

    model_config = ConfigDict(extra="forbid")

    criteria: str | None = Field(default=None, description="System prompt stating what a good response is.")
    exemplars: list[Exemplar] = Field(default_factory=list, description="In-context examples shown after the criteria.")


def system_message(custom: Customisation) -> str | None:
    """The system turn: criteria, then the exemplars as User / Good Assistant / Bad Assistant / Explanation."""
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


def conversation(system: str | None, prompt: str) -> Conversation:
    head = [{"role": "system", "content": system}] if system else []
    return head + [{"role": "user", "content": prompt}]


def template_tag(custom: Customisation, weak_system: str | None) -> str:
    """Recorded in `template`: which text was put in front of the query, as a short hash."""
    return f"cdr/v1:{stable_hash(custom.model_dump(mode='json'), weak_system or '', length=8)}"

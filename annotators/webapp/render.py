"""What the rating page shows besides the item: safe markdown, the HelpSteer2 definitions of the five
attributes (the same rubrics the LLM rater is prompted with) and the preference scale."""

from __future__ import annotations

from dataclasses import dataclass

from markdown_it import MarkdownIt

from annotators.helpsteer.preference import SCALE
from annotators.helpsteer.rubrics import RUBRICS
from schemas.ratings import ATTRIBUTES

# html=False: raw HTML in a prompt or response is shown as text, never run; CommonMark also refuses
# javascript: links. Tables and strikethrough are common in model output.
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"])


def markdown(text: str) -> str:
    """Prompt or response text -> HTML with every raw tag escaped."""
    return _MARKDOWN.render(text or "")


@dataclass(frozen=True)
class AttributeHelp:
    name: str
    title: str          # "Helpfulness"
    definition: str     # the first line of the rubric
    anchors: list[str]  # "4: ...", "3: ...", ...


def attribute_help() -> list[AttributeHelp]:
    found = []
    for attribute in ATTRIBUTES:
        head, _, anchors = RUBRICS[attribute].partition("\n")
        title, _, definition = head.partition(": ")
        found.append(AttributeHelp(attribute, title, definition, [a.strip() for a in anchors.split("; ") if a.strip()]))
    return found


def preference_scale() -> list[tuple[int, str]]:
    """(-3..+3, label) as HelpSteer2-Preference words them (0: 'about the same'), as the LLM judge sees them."""
    return sorted((int(value), text.strip()) for value, _, text in (line.partition(":") for line in SCALE.splitlines()))

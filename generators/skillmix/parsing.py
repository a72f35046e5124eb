"""Parsing model output: extracted lists (skills, query types) and `Instruction:` / `Response:` sections.

Models format loosely (numbering, bullets, markdown bold, `### Refined Instruction:`, answers cut off
mid-way), so every parser here has fallbacks, and says plainly when nothing could be found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BULLET = re.compile(r"^\s*(?:(?:[-*•+>]+|\(?\d+[.):]|#+|[a-z][.)])\s+)+", re.I)
_MARKUP = re.compile(r"\*\*|__|`")
_NAME_SEPARATOR = re.compile(r"\s*(?::|\s[-–—]\s)\s*")
MAX_NAME_WORDS = 6
MAX_NAME_CHARS = 80


def normalise_skill(name: str) -> str:
    """`Data Analysis`, `data-analysis skills`, `**data_analysis**` -> `data_analysis` ('' when nothing is left)."""
    text = re.sub(r"[^a-z0-9]+", "_", _MARKUP.sub("", name).lower())
    text = re.sub(r"_+", "_", text).strip("_")
    # "problem_solving_skills" is "problem_solving": the suffix only hides duplicates.
    return re.sub(r"(?<=.)_skills?$", "", text)


def query_type_key(name: str) -> str:
    """Key under which spellings of one query type count as the same: `Help-Seeking` == `help seeking`."""
    return normalise_skill(name)


def clean_display_name(name: str) -> str:
    return re.sub(r"\s+", " ", _MARKUP.sub("", name)).strip(" \t\"'*#.")


def list_items(text: str) -> list[tuple[str, str | None]]:
    """(name, definition or None) per list line: bullets, numbers, markdown and preambles dropped.

    A line is an item when its name part is short (≤ 6 words): prose sentences are not skills.
    A line ending in ':' with nothing after it ("Here are 10 skills:") is a heading, not an item.
    """
    items = []
    for line in text.splitlines():
        line = _BULLET.sub("", _MARKUP.sub("", line)).strip()
        if not line or line.endswith(":"):
            continue
        parts = _NAME_SEPARATOR.split(line, maxsplit=1)
        name = clean_display_name(parts[0])
        definition = parts[1].strip() if len(parts) == 2 and parts[1].strip() else None
        if not name or len(name) > MAX_NAME_CHARS or len(name.replace("_", " ").split()) > MAX_NAME_WORDS:
            continue
        if not re.search(r"[A-Za-z]", name):
            continue
        items.append((name, definition))
    return items


def skill_items(text: str) -> list[tuple[str, str | None]]:
    """Normalised skill names (comma-separated lists on one line are split too), first mention kept."""
    items, seen = [], set()
    for name, definition in list_items(text):
        for part in name.split(",") if definition is None else [name]:
            key = normalise_skill(part)
            if len(key) >= 3 and key not in seen and len(key.split("_")) <= MAX_NAME_WORDS:
                seen.add(key)
                items.append((key, definition))
    return items


def query_type_items(text: str) -> list[tuple[str, str | None]]:
    items, seen = [], set()
    for name, definition in list_items(text):
        key = query_type_key(name)
        if key and key not in seen:
            seen.add(key)
            items.append((name, definition))
    return items


# ---- Instruction / Response sections ------------------------------------------------------------

# A header starts a line: optional markdown (#, >, *, _), an optional adjective ("Refined"), the
# section word, optional closing markdown, then ':'. "Task Type" and "Skills" headers only end the
# section before them (models often echo them).
_HEADER = re.compile(
    r"^[ \t>#*_]*(?:(?:refined|improved|revised|updated|final|new|rewritten)[ \t]+)?"
    r"(instruction|query|question|response|answer|task[ \t]+type|skills)[ \t*_]*:[*_]*[ \t]*",
    re.I | re.M,
)
_PLACEHOLDER = re.compile(r"^<[^<>\n]{0,60}>$")  # the format's "<the query>" echoed back
_SECTION = {"instruction": "instruction", "query": "instruction", "question": "instruction",
            "response": "response", "answer": "response"}


def sections(text: str) -> dict[str, str]:
    """The first `instruction` and the first `response` section after it, where present."""
    found: dict[str, str] = {}
    matches = list(_HEADER.finditer(text))
    for index, match in enumerate(matches):
        kind = _SECTION.get(re.sub(r"\s+", " ", match.group(1).lower()))
        if kind is None or kind in found:
            continue
        if kind == "response" and "instruction" not in found and any(
            _SECTION.get(m.group(1).lower()) == "instruction" for m in matches[index + 1:]
        ):
            continue  # a "Response:" echoed before the real instruction
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        body = clean_section(text[match.end():end])
        if body and not _PLACEHOLDER.match(body):
            found[kind] = body
    return found


def clean_section(text: str) -> str:
    # Trailing rules and a trailing header cut off mid-word ("### Resp") are not content.
    text = re.sub(r"(?:\n\s*(?:-{3,}|\*{3,}|#{2,}[ \t]*[A-Za-z]{0,12}))+\s*$", "", text.strip()).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    # Emphasis left over from a bold header ("**Instruction:** *Q?*"): an unpaired trailing '*'.
    if text.endswith("*") and text.count("*") % 2 == 1:
        text = text[:-1].rstrip()
    if len(text) >= 2 and text[0] == text[-1] == "*" and text.count("*") == 2:
        text = text[1:-1].strip()
    return text


def has_headers(text: str) -> bool:
    return any(_SECTION.get(m.group(1).lower()) for m in _HEADER.finditer(text))


@dataclass
class Turn:
    """One assistant turn of the generation conversation."""

    label: str  # write, continue, critique, refine, rewrite
    text: str
    finish_reason: str


@dataclass
class Parsed:
    instruction: str | None
    response: str | None
    response_turn: Turn | None

    @property
    def error(self) -> str | None:
        missing = [name for name, value in (("Instruction", self.instruction), ("Response", self.response))
                   if not value]
        if not missing:
            return None
        return f"could not parse {' or '.join(repr(m + ':') for m in missing)} from any turn"


# Later turns supersede earlier ones; the critique never holds the example.
_INSTRUCTION_ORDER = ("refine", "rewrite", "continue", "write")
_RESPONSE_ORDER = ("rewrite", "refine", "continue", "write")
# A rewrite turn is asked for "only the response": with no headers at all, it is the response.
_BARE_RESPONSE_TURNS = ("rewrite", "continue")


def parse_example(turns: list[Turn]) -> Parsed:
    """Instruction and response of a conversation, taking each from the latest turn that has it."""
    by_label = {turn.label: turn for turn in turns}
    instruction = None
    for label in _INSTRUCTION_ORDER:
        turn = by_label.get(label)
        if turn and (found := sections(turn.text).get("instruction")):
            instruction = found
            break
    response, response_turn = None, None
    for label in _RESPONSE_ORDER:
        turn = by_label.get(label)
        if turn is None:
            continue
        found = sections(turn.text).get("response")
        if not found and label in _BARE_RESPONSE_TURNS and not has_headers(turn.text):
            bare = clean_section(turn.text)
            found = bare if bare and not _PLACEHOLDER.match(bare) else None
        if found:
            response, response_turn = found, turn
            break
    return Parsed(instruction, response, response_turn)


def strip_quotes(text: str) -> str:
    return clean_section(text)

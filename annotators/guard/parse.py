"""Parse a guard's answer: 'safe' or 'unsafe' on the first line, violated codes on the second."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from schemas.taxonomies import Taxonomy


class GuardOutputError(ValueError):
    """The guard's text is not a verdict in the expected format."""


@dataclass
class GuardVerdict:
    unsafe: bool
    categories: list[str] = field(default_factory=list)  # codes as the taxonomy spells them


SPLIT = re.compile(r"[,;\s]+")


def parse_guard_output(text: str, taxonomy: Taxonomy) -> GuardVerdict:
    """Tolerant of case, spacing and blank lines; unknown category codes raise GuardOutputError."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    if not lines:
        raise GuardOutputError("empty guard output")
    first = lines[0].lower().rstrip(".:")
    if first not in ("safe", "unsafe"):
        raise GuardOutputError(f"first line is {lines[0][:40]!r}, not 'safe' or 'unsafe'")
    if first == "safe":
        return GuardVerdict(unsafe=False)
    known = {code.upper(): code for code in taxonomy.codes}
    categories: list[str] = []
    for token in SPLIT.split(lines[1]) if len(lines) > 1 else []:
        token = token.strip().rstrip(".")
        if not token:
            continue
        if token.upper() not in known:
            raise GuardOutputError(f"unknown category code {token!r} (taxonomy {taxonomy.name}: {', '.join(taxonomy.codes)})")
        if known[token.upper()] not in categories:
            categories.append(known[token.upper()])
    return GuardVerdict(unsafe=True, categories=categories)

"""What a guard model's own chat template does: whether it renders a guard prompt, and which
categories it has built in (Llama Guard templates hard-code their taxonomy in the template text).
"""

from __future__ import annotations

import re
from typing import Any

from schemas.taxonomies import Taxonomy

GUARD_TEMPLATE_MARK = "UNSAFE CONTENT CATEGORIES"  # a chat template that renders the guard prompt itself
_BLOCK = re.compile(r"<BEGIN UNSAFE CONTENT CATEGORIES>(.*?)<END UNSAFE CONTENT CATEGORIES>", re.S)
_CATEGORY = re.compile(r"^\s*([A-Za-z]+\d+)\s*:\s*(.+?)\s*$", re.M)  # "S1: Violent Crimes." (descriptions never match)


def engine_tokenizer(engine: Any) -> Any | None:
    """The tokenizer an engine formats with (transformers / vllm: `tokenizer`; openai: `template`)."""
    return getattr(engine, "tokenizer", None) or getattr(engine, "template", None)


def chat_template(tokenizer: Any | None) -> str:
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):  # several named templates: the default one formats chats
        template = template.get("default") or ""
    return template if isinstance(template, str) else ""


def is_guard_template(template: str) -> bool:
    return GUARD_TEMPLATE_MARK in template


def template_categories(template: str) -> list[tuple[str, str]] | None:
    """(code, name) of each category a guard template lists, or None when they cannot be read.

    Templates hold the list inside Jinja string literals, so newlines may be written as `\\n`.
    A list built from a template variable (not literal text) cannot be read.
    """
    match = _BLOCK.search(template.replace("\\n", "\n"))
    if match is None or "{{" in match.group(1) or "{%" in match.group(1):
        return None
    found = [(code, name.rstrip(". ")) for code, name in _CATEGORY.findall(match.group(1))]
    return found or None


def taxonomy_difference(taxonomy: Taxonomy, built_in: list[tuple[str, str]]) -> str | None:
    """A short description of how `taxonomy` differs from a template's categories; None if it does not."""
    ours = {c.code.upper(): c.name.rstrip(". ") for c in taxonomy.categories}
    theirs = {code.upper(): name for code, name in built_in}
    parts = []
    if extra := [code for code in ours if code not in theirs]:
        parts.append(f"not in the template: {', '.join(extra)}")
    if missing := [code for code in theirs if code not in ours]:
        parts.append(f"only in the template: {', '.join(missing)}")
    renamed = [f"{code} {ours[code]!r} vs {theirs[code]!r}" for code in ours
               if code in theirs and ours[code].lower() != theirs[code].lower()]
    if renamed:
        parts.append(f"named differently: {'; '.join(renamed)}")
    if not parts and list(ours) != list(theirs):
        parts.append("the order differs")
    return "; ".join(parts) or None

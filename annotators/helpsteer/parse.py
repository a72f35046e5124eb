"""Parse generated ratings and justifications."""

from __future__ import annotations

import re

SCORE = re.compile(r"score\s*[:=]?\s*\**\s*([0-4])\b", re.IGNORECASE)
DIGIT = re.compile(r"(?<![\d.-])([0-4])(?![\d.])")


class RatingParseError(ValueError):
    """Generated text holds no 0-4 score."""


def parse_score(text: str) -> int:
    """The last 'Score: N' in the text, else its last lone digit 0-4."""
    matches = SCORE.findall(text or "") or DIGIT.findall(text or "")
    if not matches:
        raise RatingParseError(f"no 0-4 score in {text[:60]!r}")
    return int(matches[-1])


# A sentence ends at . ! or ? followed by white space (so "3.5" and "v1.2" stay whole), or at a line break.
SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\s*\n+\s*")


def split_justification(text: str | None) -> tuple[str | None, str | None]:
    """(preference_statement, preference_elaboration) from a written justification: its first
    sentence (or first line) and the rest, as HelpSteer2-Preference post-processed its annotators'
    justifications. None for what is missing: no text, or a one-sentence justification's elaboration."""
    if text is None or not text.strip():
        return None, None
    parts = SENTENCE_BREAK.split(text.strip(), maxsplit=1)
    rest = parts[1].strip() if len(parts) > 1 else ""
    return parts[0].strip(), rest or None

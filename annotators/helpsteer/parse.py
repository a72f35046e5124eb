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

"""Checks of human labels (stages `import_ratings` and `import_preferences`, stages.py): values are
checked before any row is written, and a bad one fails the run with its seed line number and field."""

from __future__ import annotations

import math
from typing import Any

from factory.errors import FactoryError


def where(row: dict[str, Any]) -> str:
    return f"human labels, seed line {row.get('source_line', '?')}"


def check_text(row: dict[str, Any], field: str) -> None:
    value = row.get(field)
    if not isinstance(value, str) or not value.strip():
        raise FactoryError(f"{where(row)}: field '{field}': a non-empty string is required")


def check_score(row: dict[str, Any], field: str, low: int, high: int, integer: bool) -> None:
    value = row.get(field)
    if value is None:
        return
    # NaN and infinity are floats too (JSON lines may hold them); neither is a score.
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or (integer and value != int(value))):
        raise FactoryError(f"{where(row)}: field '{field}': expected {'an integer' if integer else 'a number'}, got {value!r}")
    if not low <= value <= high:
        raise FactoryError(f"{where(row)}: field '{field}': {value} is outside {low}..{high}")


def check_optional_text(row: dict[str, Any], field: str) -> None:
    if row.get(field) is not None and not isinstance(row[field], str):
        raise FactoryError(f"{where(row)}: field '{field}': expected a string, got {row[field]!r}")


def justification_of(row: dict[str, Any]) -> str | None:
    """`justification`, else the data card's `preference_statement` + `preference_elaboration` joined
    (the export splits them back at the first sentence)."""
    if row.get("justification"):
        return row["justification"]
    parts = [row.get(f, "").strip() for f in ("preference_statement", "preference_elaboration") if row.get(f)]
    return " ".join(p for p in parts if p) or None

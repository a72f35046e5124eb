"""Required columns: which are missing, and the one message that names them and the columns there are."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from factory.errors import FactoryError


def missing_columns(needs: Iterable[str], present: Collection[str]) -> list[str]:
    """The needs `present` does not meet, in order. A need is a column name or alternatives 'a|b'
    (any one will do), returned as 'a or b' so a message can show it as is."""
    return [need.replace("|", " or ") for need in needs if not any(option in present for option in need.split("|"))]


def require_columns(needs: Iterable[str], present: Collection[str], what: str, holder_has: str,
                    error: type[FactoryError] = FactoryError) -> None:
    """Raise `error` naming every missing need at once (so one fix, not one per run), and the columns
    that are there: `{what} needs column(s) a, b or c; {holder_has}: x, y`, where `holder_has` is
    e.g. "the rows have" or "'responses' has"."""
    missing = missing_columns(needs, present)
    if missing:
        raise error(f"{what} needs column(s) {', '.join(missing)}; {holder_has}: {', '.join(present)}")

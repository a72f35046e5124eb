"""Data-set names: checked where they are declared, quoted wherever SQL names them.

A name is lower-case letters, digits and '_' (so two data sets can never differ only in case,
which DuckDB's case-insensitive identifiers would confuse) and is never a reserved SQL keyword
(so `SELECT * FROM name` works in any query a user types).
"""

from __future__ import annotations

import functools
import re
from typing import Annotated

import duckdb
from pydantic import AfterValidator

from factory.errors import StoreError

DATASET_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
ARTIFACTS_FOLDER = "_artifacts"  # the store's folder for files that are no data set (training runs)
STAGE_RUNS_DATASET = "runs"  # one row per pipeline stage run (`factory run`)
TRAINING_RUNS_DATASET = "training_runs"  # one row per training run (`factory train`)


@functools.cache
def reserved_keywords() -> frozenset[str]:
    rows = duckdb.connect().sql("SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'")
    return frozenset(name.lower() for (name,) in rows.fetchall())


def dataset_name_problem(name: object) -> str | None:
    """Why `name` cannot be a data set name (None when it can)."""
    if not isinstance(name, str) or not DATASET_NAME.match(name):
        return (f"invalid data set name {name!r}: use lower-case letters, digits and '_', "
                "not starting with a digit, at most 63 characters")
    if name == ARTIFACTS_FOLDER:
        return f"invalid data set name {name!r}: the store keeps training artifacts there; choose another name"
    if name in reserved_keywords():
        return f"invalid data set name {name!r}: it is a reserved SQL keyword; choose another name"
    return None


def check_dataset_name(name: str, where: str | None = None) -> str:
    problem = dataset_name_problem(name)
    if problem:
        raise StoreError(f"{where}: {problem}" if where else problem)
    return name


def _valid_name(name: str) -> str:
    problem = dataset_name_problem(name)
    if problem:
        raise ValueError(problem)
    return name


DatasetName = Annotated[str, AfterValidator(_valid_name)]
"""A config field naming a data set: checked when the config is read, before any work."""


def quote_identifier(name: str) -> str:
    """A SQL identifier, quoted (DuckDB and DataFusion both read double quotes)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A SQL string literal, for delta-rs predicates (DataFusion SQL, which takes no parameters)."""
    return "'" + value.replace("'", "''") + "'"

"""Data set `safety`: Llama Guard labels, with one boolean column per category of the taxonomy used."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, create_model

from schemas.common import BaseRow
from schemas.taxonomies import Taxonomy


class SafetyRow(BaseRow):
    """The columns every safety row has; `safety_record_type` adds `unsafe_<code>` per category."""

    prompt: str | None = Field(default=None, description="The user prompt of the classified conversation.")
    response: str | None = Field(default=None, description="The agent response (None for prompt classification).")
    role: str = Field(description="Which turn was judged: 'User' (prompt) or 'Agent' (response).")
    taxonomy: str = Field(description="Taxonomy name: 'v1', 'v3' or the custom one's.")
    p_unsafe: float | None = Field(default=None, description="P('unsafe') / (P('safe') + P('unsafe')) as the first answer.")
    unsafe: bool | None = Field(default=None, description="p_unsafe >= threshold.")
    categories: list[str] | None = Field(
        default=None, description="Violated category codes from the generated second line; None when not generated."
    )
    keep: bool | None = Field(default=None, description="The stage's filter policy: True when the row may be used.")
    raw_output: str | None = Field(default=None, description="The guard's generated text (generative mode).")


def category_column(code: str) -> str:
    return f"unsafe_{code.lower()}"


@lru_cache(maxsize=32)
def safety_record_type(taxonomy: Taxonomy) -> type[SafetyRow]:
    """SafetyRow plus `unsafe_<code>` (bool, None when categories were not generated) per category.

    A data set has one schema, so all rows written to one `safety` data set must share a taxonomy;
    write another taxonomy's labels to another data set.
    """
    fields = {
        category_column(c.code): (bool | None, Field(default=None, description=f"{c.code}: {c.name} was violated."))
        for c in taxonomy.categories
    }
    clashes = sorted(set(fields) & set(SafetyRow.model_fields))
    if clashes:
        raise ValueError(f"category codes give columns that already exist: {', '.join(clashes)}")
    return create_model(f"SafetyRow_{taxonomy.name}", __base__=SafetyRow, **fields)

"""Stage `skillmix.query_types`: every query-type mention (and users' own lists) -> one deduplicated
list, data set `query_types`. Spellings that differ only in case and punctuation are one entry; the
display name keeps the most common spelling. Merging and counting: generators/skillmix/aggregate.py."""

from __future__ import annotations

from generators.skillmix.aggregate import AggregateStage
from generators.skillmix.parsing import clean_display_name, query_type_key
from schemas.skillmix import QueryTypeRow


class QueryTypesStage(AggregateStage):
    Record = QueryTypeRow
    default_output = "query_types"
    kind = "query_types"

    @staticmethod
    def normalise(name: str) -> tuple[str, str]:
        return query_type_key(name), clean_display_name(name)

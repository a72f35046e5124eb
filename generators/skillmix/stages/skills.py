"""Stage `skillmix.skills`: every skill mention (and users' own lists) -> one deduplicated list, data
set `skills`. Names are normalised to snake_case keys; merging and counting: generators/skillmix/aggregate.py."""

from __future__ import annotations

from generators.skillmix.aggregate import AggregateStage
from generators.skillmix.parsing import normalise_skill
from schemas.skillmix import SkillRow


class SkillsStage(AggregateStage):
    Record = SkillRow
    default_output = "skills"
    kind = "skills"

    @staticmethod
    def normalise(name: str) -> tuple[str, str]:
        key = normalise_skill(name)
        return key, key

"""Record types for every table the factory writes. Imports nothing of ours (DESIGN.md §2)."""

from schemas.common import BaseRow, arrow_schema, rows_to_arrow
from schemas.responses import ResponseRow
from schemas.runs import RunRecord
from schemas.seeds import SeedPrompt

__all__ = ["BaseRow", "ResponseRow", "RunRecord", "SeedPrompt", "arrow_schema", "rows_to_arrow"]
from schemas.skillmix import InstructionRow, QueryTypeRow, SkillMentionRow, SkillRow  # noqa: E402

__all__ += ["InstructionRow", "QueryTypeRow", "SkillMentionRow", "SkillRow"]
from schemas.cdr import PreferenceRow, RewardRow  # noqa: E402
from schemas.ratings import AggregatedPreferenceRow, AggregatedRatingRow, HelpSteerPreferenceRow, RatingRow  # noqa: E402
from schemas.safety import SafetyRow, safety_record_type  # noqa: E402
from schemas.taxonomies import CustomTaxonomy, SafetyCategory, Taxonomy  # noqa: E402

__all__ += ["AggregatedPreferenceRow", "AggregatedRatingRow", "CustomTaxonomy", "HelpSteerPreferenceRow", "PreferenceRow",
            "RatingRow", "RewardRow",
            "SafetyCategory", "SafetyRow", "Taxonomy", "safety_record_type"]
from schemas.training import TrainingRunRecord  # noqa: E402

__all__ += ["TrainingRunRecord"]
from schemas.judging import AgreementRow, FeedbackTurnRow, JudgmentRow, WinRateRow  # noqa: E402

__all__ += ["AgreementRow", "FeedbackTurnRow", "JudgmentRow", "WinRateRow"]

"""Stage lookup: a small name table, or any dotted path. `factory` never imports stages by name."""

from __future__ import annotations

import importlib

from factory.errors import ConfigError
from factory.stage import Stage

# Short names for the stages that ship with the factory: "module:Class", imported on demand.
STAGE_TABLE: dict[str, str] = {
    "generate": "generators.stages:GenerateStage",
    "skillmix.extract": "generators.skillmix.stages.extract:ExtractStage",
    "skillmix.skills": "generators.skillmix.stages.skills:SkillsStage",
    "skillmix.query_types": "generators.skillmix.stages.query_types:QueryTypesStage",
    "skillmix.generate": "generators.skillmix.stages.generate:SkillMixGenerateStage",
    "skillmix.dedup": "generators.skillmix.stages.dedup:DedupStage",
    "cdr": "annotators.cdr.stages:CDRStage",
    "cdr_pairs": "annotators.cdr.stages:CDRPairsStage",
    "llama_guard": "annotators.guard.stages:LlamaGuardStage",
    "helpsteer": "annotators.helpsteer.stages:HelpSteerStage",
    "helpsteer_aggregate": "annotators.helpsteer.stages:HelpSteerAggregateStage",
    "helpsteer_preference": "annotators.helpsteer.stages:HelpSteerPreferenceStage",
    "helpsteer_preference_aggregate": "annotators.helpsteer.stages:HelpSteerPreferenceAggregateStage",
    "import_ratings": "annotators.helpsteer.stages:ImportRatingsStage",
    "import_preferences": "annotators.helpsteer.stages:ImportPreferencesStage",
    "feedback_loop": "generators.feedback.stages:FeedbackLoopStage",
    "feedback_answers": "generators.feedback.stages:FeedbackAnswersStage",
    "judge": "annotators.judges.stages.judge:JudgeStage",
    "jury": "annotators.judges.stages.jury:JuryStage",
    "debate": "annotators.judges.stages.debate:DebateStage",
    "win_rates": "annotators.judges.stages.win_rates:WinRatesStage",
}


def resolve_stage(reference: str, where: str = "stage") -> type[Stage]:
    target = STAGE_TABLE.get(reference, reference)
    if ":" in target:
        module_name, _, class_name = target.partition(":")
    elif "." in target:
        module_name, _, class_name = target.rpartition(".")
    else:
        known = ", ".join(sorted(STAGE_TABLE))
        raise ConfigError(f"{where}: unknown stage {reference!r} (known: {known}; or a dotted path 'pkg.module:Class')")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{where}: cannot import {module_name!r} for stage {reference!r}: {exc}") from None
    stage_class = getattr(module, class_name, None)
    if not (isinstance(stage_class, type) and issubclass(stage_class, Stage)):
        raise ConfigError(f"{where}: {target!r} is not a Stage class")
    return stage_class

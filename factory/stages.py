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


# The name each shipped stage's fingerprint is computed with: the dotted path where the class first
# lived. A fingerprint is part of every row id a stage writes, so it must not change when a class
# moves, or a re-run on an existing store would redo the stage and store its rows a second time.
FINGERPRINT_NAMES: dict[str, str] = {
    "generate": "generators.generate.GenerateStage",
    "skillmix.extract": "generators.skillmix.extract.ExtractStage",
    "skillmix.skills": "generators.skillmix.aggregate.SkillsStage",
    "skillmix.query_types": "generators.skillmix.aggregate.QueryTypesStage",
    "skillmix.generate": "generators.skillmix.generate.SkillMixGenerateStage",
    "skillmix.dedup": "generators.skillmix.dedup.DedupStage",
    "cdr": "annotators.cdr.stage.CDRStage",
    "cdr_pairs": "annotators.cdr.pairs.CDRPairsStage",
    "llama_guard": "annotators.guard.stage.LlamaGuardStage",
    "helpsteer": "annotators.helpsteer.stage.HelpSteerStage",
    "helpsteer_aggregate": "annotators.helpsteer.aggregate_stage.HelpSteerAggregateStage",
    "helpsteer_preference": "annotators.helpsteer.preference.HelpSteerPreferenceStage",
    "helpsteer_preference_aggregate": "annotators.helpsteer.preference_aggregate_stage.HelpSteerPreferenceAggregateStage",
    "import_ratings": "annotators.helpsteer.human.ImportRatingsStage",
    "import_preferences": "annotators.helpsteer.human.ImportPreferencesStage",
    "feedback_loop": "generators.feedback.loop.FeedbackLoopStage",
    "feedback_answers": "generators.feedback.answers.FeedbackAnswersStage",
    "judge": "annotators.judges.judge.JudgeStage",
    "jury": "annotators.judges.jury.JuryStage",
    "debate": "annotators.judges.debate.DebateStage",
    "win_rates": "annotators.judges.winrate_stage.WinRatesStage",
}


def fingerprint_name(stage_class: type[Stage]) -> str:
    """A shipped stage's fixed name (however the pipeline named it: table name or dotted path);
    any other stage's `module.Class`."""
    path = f"{stage_class.__module__}:{stage_class.__qualname__}"
    for name, target in STAGE_TABLE.items():
        if target == path:
            return FINGERPRINT_NAMES[name]
    return f"{stage_class.__module__}.{stage_class.__qualname__}"


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

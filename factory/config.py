"""Pipeline configs: YAML parsed at the edge into pydantic models (DESIGN.md §5).

Every error names the YAML path of the fault, e.g. `stages[1].config.n: ...`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from factory.engines.spec import ModelSpec
from factory.errors import ConfigError
from factory.ids import stable_hash
from factory.models import BUNDLED
from factory.stage import Stage
from factory.stages import fingerprint_name, resolve_stage
from factory.store.names import DatasetName, dataset_name_problem
from factory.yaml_errors import load_yaml_file


class SeedInput(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    seed: Path = Field(description="JSONL or Parquet file of prompts, relative to the YAML file.")
    dataset: DatasetName | None = Field(default=None,
                                       description="Data set the seed rows are loaded into (default: file stem).")


class DatasetInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: DatasetName = Field(description="Data set to read: an earlier stage's output or one already in the store.")
    where: str | None = Field(default=None, description="SQL predicate selecting the input rows.")


class CountInput(BaseModel):
    """No input data: `count` rows with ids "0".."count-1" (for stages that make data from nothing)."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=1, description="How many input rows to make.")


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")

    concurrency: int = Field(default=1, ge=1, description="Actors in the stage's pool (each loads its models once).")
    num_cpus: float = Field(default=0.25, ge=0, description="CPUs reserved per stage actor. Models run in their "
                            "shared engine actors (models: num_cpus/num_gpus), so a stage actor mostly waits on them.")
    num_gpus: float = Field(default=0, ge=0, description="GPUs per stage actor (for a stage's own GPU work; "
                            "models get theirs in the models: section).")
    batch_size: int = Field(default=8, ge=1, description="Input rows per batch; a batch is one committed shard.")


class StageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: str = Field(description="Short stage name (see factory.stages) or a dotted path 'package.module:Class'.")
    name: str | None = Field(default=None, description="Unique name in this pipeline (default: the stage name).")
    input: SeedInput | DatasetInput | CountInput = Field(description="Where the stage's input rows come from.")
    output: DatasetName | None = Field(default=None, description="Data set written (default: the stage's own).")
    model: str | None = Field(default=None, description="Shorthand for models: {model: NAME}.")
    models: dict[str, str] = Field(default_factory=dict, description="Role -> model name from the models section.")
    config: dict[str, Any] = Field(default_factory=dict, description="The stage's own settings (its Config type).")
    resources: Resources = Field(default_factory=Resources)

    @model_validator(mode="after")
    def _model_shorthand(self) -> StageSpec:
        if self.model is not None:
            self.models = {"model": self.model, **self.models}
        return self


class TrainStep(BaseModel):
    """A training run that ends the pipeline (run after every stage), e.g. SFT on `responses`."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="What to train: a kind of `factory train` (docs/trainers.md).")
    config: Path = Field(description="Training YAML, relative to the pipeline file.")
    where: str | None = Field(default=None, description="Extra SQL predicate on the training rows.")


# A training step, run after the stages: `run(store, console)` -> `training_runs` rows written (0 or 1).
TrainingRun = Callable[[Any, Any], int]
# The trainers' plug-in, handed in by the CLI (factory never imports trainers, DESIGN.md §2): checks a
# step (its kind, its training YAML relative to the pipeline's folder) while the pipeline loads, before
# any stage runs, as (step, pipeline folder, "file: train[i]"); errors name `train[i].kind` or `.config`.
PlanTraining = Callable[["TrainStep", Path, str], TrainingRun]


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Pipeline name, recorded with every run.")
    executor: Literal["ray", "local"] = Field(
        default="ray", description="'ray': Ray Data actor pools; 'local': the same stage code in this process."
    )
    streaming: bool = Field(
        default=True, description="Run stages concurrently: row-wise stages consume their input as it is committed, "
        "grouping stages start once the stages before them finished (docs: README 'How a run flows'). "
        "false: one stage after another.")
    models: dict[str, ModelSpec] = Field(default_factory=dict, description="Named models the stages use.")
    stages: list[StageSpec] = Field(min_length=1, description="Stages, run in order.")
    train: list[TrainStep] = Field(default_factory=list, description="Training runs after the stages.")


@dataclass
class PlannedStage:
    """A stage spec with its class resolved, its config typed and its models looked up."""

    index: int
    spec: StageSpec
    name: str
    stage_class: type[Stage]
    config: BaseModel
    models: dict[str, ModelSpec]
    output: str
    fingerprint: str

    @property
    def path(self) -> str:
        return f"stages[{self.index}]"


@dataclass
class Pipeline:
    config: PipelineConfig
    base_dir: Path
    stages: list[PlannedStage]
    training: list[TrainingRun]  # the `train:` steps, checked (run after the stages)

    def seed_dataset(self, stage: PlannedStage) -> str:
        return seed_dataset_name(stage.spec)

    def seed_path(self, stage: PlannedStage) -> Path:
        assert isinstance(stage.spec.input, SeedInput)
        path = stage.spec.input.seed
        return path if path.is_absolute() else self.base_dir / path


def seed_dataset_name(spec: StageSpec) -> str:
    """The data set a stage's seed rows are loaded into: the one named, else the file's stem."""
    assert isinstance(spec.input, SeedInput)
    return spec.input.dataset or re.sub(r"\W", "_", spec.input.seed.stem).lower()


def _check_dataset_names(spec: StageSpec, output: str, where: str) -> None:
    """Names are checked where they are declared, before any work (nothing is written for a bad one)."""
    declared = [("output", output)]
    if isinstance(spec.input, SeedInput):
        declared.append(("input.dataset" if spec.input.dataset else "input.seed", seed_dataset_name(spec)))
    elif isinstance(spec.input, DatasetInput):
        declared.append(("input.dataset", spec.input.dataset))
    for field, name in declared:
        problem = dataset_name_problem(name)
        if problem:
            raise ConfigError(f"{where}.{field}: {problem}")


def format_location(location: tuple[Any, ...]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _validation_message(exc: ValidationError, prefix: str = "") -> str:
    problems = []
    for error in exc.errors():
        # Union members add their class name to the location; it means nothing to a YAML author.
        location = tuple(p for p in error["loc"] if p not in ("SeedInput", "DatasetInput", "CountInput"))
        where = format_location(location)
        where = f"{prefix}.{where}" if prefix and where else (prefix or where)
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)


def parse_pipeline(raw: Any, base_dir: Path, source: str = "<pipeline>",
                   plan_training: PlanTraining | None = None) -> Pipeline:
    """The checked pipeline; its `train:` steps need `plan_training` (trainers.pipeline.plan_train_step)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a pipeline is a YAML mapping with 'name', 'models' and 'stages'")
    try:
        config = PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_validation_message(exc)}") from None
    for key, model in config.models.items():
        if model.backend != "openai":  # an openai model name is whatever the server calls it
            model.name = check_model_name(model.name, f"{source}: models.{key}.name", base_dir)
    planned: list[PlannedStage] = []
    names: set[str] = set()
    for index, spec in enumerate(config.stages):
        path = f"stages[{index}]"
        stage_class = resolve_stage(spec.stage, f"{source}: {path}.stage")
        name = spec.name or spec.stage.rsplit(".", 1)[-1].rsplit(":", 1)[-1]
        if name in names:
            raise ConfigError(f"{source}: {path}.name: stage name {name!r} is used twice; give each stage a name")
        names.add(name)
        try:
            typed = stage_class.Config.model_validate(spec.config)
        except ValidationError as exc:
            raise ConfigError(f"{source}: {_validation_message(exc, f'{path}.config')}") from None
        models = _stage_models(config, spec, stage_class, f"{source}: {path}")
        output = spec.output or stage_class.default_output
        _check_dataset_names(spec, output, f"{source}: {path}")
        fingerprint = stable_hash(
            fingerprint_name(stage_class),  # fixed for shipped stages: moving a class keeps its ids
            typed.model_dump(mode="json"),
            {role: model.name for role, model in models.items()},
        )
        planned.append(PlannedStage(index, spec, name, stage_class, typed, models, output, fingerprint))
    training = []
    for index, step in enumerate(config.train):
        if plan_training is None:
            raise ConfigError(f"{source}: train[{index}]: this loader was given no trainers; `factory run` trains")
        training.append(plan_training(step, base_dir, f"{source}: train[{index}]"))
    return Pipeline(config, base_dir, planned, training)


HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def check_model_name(name: str, where: str, base_dir: Path) -> str:
    """The name as engines load it (a folder made absolute, relative to the YAML); fails before
    launch on a name that is no bundled model, no folder and no hub id."""
    bundled = BUNDLED.get(name)
    if bundled is not None:
        if not bundled.installed():
            raise ConfigError(f"{where}: bundled model {name!r} needs the package {bundled.package!r}; install it first")
        return name
    folder = (base_dir / name).expanduser()
    if folder.is_dir():
        return str(folder.resolve())
    if HUB_ID.match(name):
        return name
    raise ConfigError(
        f"{where}: unknown model {name!r}: not a bundled model ({', '.join(BUNDLED)}), "
        "an existing folder, or a hub id like 'org/name'"
    )


def _stage_models(config: PipelineConfig, spec: StageSpec, stage_class: type[Stage], where: str) -> dict[str, ModelSpec]:
    models = {}
    for role in stage_class.model_roles:
        if role not in spec.models:
            raise ConfigError(f"{where}.models.{role}: stage '{spec.stage}' needs a model for role '{role}'")
    for role, model_name in spec.models.items():
        field = "model" if role == "model" and spec.model is not None else f"models.{role}"
        if role not in stage_class.model_roles + stage_class.optional_model_roles:
            raise ConfigError(
                f"{where}.{field}: stage '{spec.stage}' has no model role {role!r} "
                f"(roles: {', '.join(stage_class.model_roles + stage_class.optional_model_roles) or 'none'})"
            )
        if model_name not in config.models:
            defined = ", ".join(sorted(config.models)) or "none"
            raise ConfigError(f"{where}.{field}: unknown model {model_name!r} (defined in models: {defined})")
        models[role] = config.models[model_name]
    return models


def load_pipeline(path: str | Path, plan_training: PlanTraining | None = None) -> Pipeline:
    path = Path(path)
    raw = load_yaml_file(path, "pipeline")
    return parse_pipeline(raw, path.parent.resolve(), str(path), plan_training)

"""Training configs: YAML parsed at the edge into pydantic models; errors name the YAML path.

One config class per method, as TRL has (SFTConfig, DPOConfig, CPOConfig with SimPO, RewardConfig),
joined in the discriminated union `TrainConfig` on `kind` (given by the command, `factory train KIND`);
a reward config's `rm:` section is itself a union on `objective`. A section or option of another
method is an error, as is any unknown key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from factory.config import check_model_name, format_location
from factory.errors import ConfigError
from factory.store import DatasetName, quote_identifier
from factory.yaml_errors import load_yaml_file

HELPSTEER_ATTRIBUTES = ["helpfulness", "correctness", "coherence", "complexity", "verbosity"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSource(_Strict):
    """Rows from the store: a SQL query, or a data set with an optional predicate."""

    query: str | None = Field(default=None, description="SQL over the store (each data set is a table).")
    dataset: DatasetName | None = Field(default=None, description="Data set name; used when `query` is not given.")
    where: str | None = Field(default=None, description="SQL predicate on `dataset` (or on the query's rows).")
    keep_errors: bool = Field(default=False, description="Keep rows whose `error` column is set (dropped by default).")

    @model_validator(mode="after")
    def _one_source(self) -> DataSource:
        if (self.query is None) == (self.dataset is None):
            raise ValueError("give exactly one of 'query' or 'dataset'")
        return self

    def sql(self) -> str:
        base = self.query.strip().rstrip(";") if self.query else f"SELECT * FROM {quote_identifier(self.dataset)}"
        conditions = [f"({self.where})"] if self.where else []
        return f"SELECT * FROM ({base}) AS src" + (f" WHERE {' AND '.join(conditions)}" if conditions else "")


class LoraOptions(_Strict):
    r: int = Field(default=8, ge=1, description="LoRA rank.")
    alpha: int = Field(default=16, ge=1, description="LoRA scaling alpha.")
    dropout: float = Field(default=0.0, ge=0, lt=1, description="Dropout on the LoRA path.")
    target_modules: list[str] | str = Field(default="all-linear", description="Modules to adapt (peft syntax).")


class Optimisation(_Strict):
    max_steps: int = Field(default=10, ge=1, description="Optimizer steps in total (a resumed run continues to it).")
    learning_rate: float = Field(default=1e-4, gt=0, description="Peak learning rate.")
    batch_size: int = Field(default=2, ge=1, description="Examples (or pairs) per device per step.")
    gradient_accumulation_steps: int = Field(default=1, ge=1, description="Micro-batches per optimizer step.")
    max_length: int = Field(default=512, ge=8, description="Longest tokenized sequence; longer ones are truncated/dropped.")
    warmup_steps: int = Field(default=0, ge=0, description="Linear warm-up steps.")
    logging_steps: int = Field(default=1, ge=1, description="Log metrics every N steps (recorded in training_runs).")
    save_steps: int = Field(default=50, ge=1, description="Checkpoint every N steps; the last step is always saved.")
    seed: int = Field(default=0, description="Seed for data order and initialisation.")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        default="auto", description="'auto': bf16 on GPUs that support it, fp16 on other GPUs, fp32 on CPU.")


class RayOptions(_Strict):
    num_workers: int = Field(default=1, ge=1, description="Ray Train workers (data parallel).")
    use_gpu: bool = Field(default=False, description="One GPU per worker.")
    cpus_per_worker: float = Field(default=1, gt=0, description="CPUs reserved per worker (its torch threads).")


class SFTOptions(_Strict):
    assistant_only_loss: bool = Field(default=True, description="Loss on assistant tokens only (conversations).")


class DPOOptions(_Strict):
    beta: float = Field(default=0.1, gt=0, description="KL strength β of DPO.")


class SimPOOptions(_Strict):
    beta: float = Field(default=2.0, gt=0, description="Reward scale β of SimPO (paper: 2.0-2.5).")
    gamma: float = Field(default=0.5, ge=0, description="Target margin γ (TRL's `simpo_gamma`).")


# ---- reward objectives: the `rm:` section, a union on `objective` (default bt)

# Reference defaults of RLHFlow/RLHF-Reward-Modeling armo-rm (stage-1_train.py, stage-2_train.py).
ARMO_RIDGE_ALPHAS = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4]
PositiveFloat = Annotated[float, Field(gt=0)]
ATTRIBUTES_FIELD = Field(default_factory=lambda: list(HELPSTEER_ATTRIBUTES), description="Attribute columns.")


class BTOptions(_Strict):
    objective: Literal["bt"] = Field(default="bt", description="Bradley-Terry: -logσ(rc-rr) (TRL's RewardTrainer).")


class MarginOptions(_Strict):
    objective: Literal["margin"] = Field(default="margin", description=(
        "-logσ(rc-rr-m): column `margin`, else |preference_strength| (TRL's RewardTrainer with a margin)."))


class ScaledBTOptions(_Strict):
    objective: Literal["scaled_bt"] = Field(default="scaled_bt", description="|strength|·-logσ(rc-rr) (HelpSteer2-Preference).")


class RegressionOptions(_Strict):
    objective: Literal["regression"] = Field(default="regression", description="MSE on the attributes, one head each.")
    attributes: list[str] = ATTRIBUTES_FIELD


class RegressionThenScaledBTOptions(_Strict):
    objective: Literal["regression_then_scaled_bt"] = Field(default="regression_then_scaled_bt", description=(
        "The HelpSteer2 recipe: a regression phase, then scaled BT from its `head_attribute` row."))
    attributes: list[str] = ATTRIBUTES_FIELD
    regression_data: DataSource | None = Field(default=None, description=(
        "Rating rows for the regression phase (top-level `data` holds the pairs); required."))
    regression_steps: int | None = Field(default=None, ge=1, description="Steps of the regression phase "
                                                                        "(default: training.max_steps).")
    regression_attributes: list[str] | None = Field(default=None, min_length=1, description=(
        "Attributes the regression phase trains on (each one of `attributes`); default: [head_attribute] "
        "alone, as HelpSteer2-Preference initialises scaled BT from a helpfulness-only regression model."))
    head_attribute: str = Field(default="helpfulness", description=(
        "The regression head row that initialises the scalar reward head."))

    @model_validator(mode="after")
    def _checked(self) -> RegressionThenScaledBTOptions:
        """Every attribute it names must be one of `attributes` (errors name the field)."""
        if self.regression_data is None:
            raise ValueError("rm.regression_data: regression_then_scaled_bt needs the rating rows for its "
                             "regression phase (top-level 'data' holds the preference pairs)")
        _named_attributes(self, [("regression_attributes", a) for a in self.regression_attributes or []]
                          + [("head_attribute", self.head_attribute)])
        if self.head_attribute not in self.regression_phase_attributes:
            raise ValueError(f"rm.head_attribute: {self.head_attribute!r} is not one of rm.regression_attributes "
                             f"{self.regression_phase_attributes}: its regression row starts the scalar head")
        return self

    @property
    def regression_phase_attributes(self) -> list[str]:
        """The attributes the regression phase trains on."""
        return self.regression_attributes or [self.head_attribute]


class MultiObjectiveOptions(_Strict):
    objective: Literal["multi_objective"] = Field(default="multi_objective", description=(
        "ArmoRM-style ridge heads + gating on a frozen backbone (docs/trainers.md)."))
    attributes: list[str] = ATTRIBUTES_FIELD
    pairs: DataSource | None = Field(default=None, description=(
        "Preference pairs for the gating network; default: pairs built from the rating rows of the same "
        "prompt, ordered by `pair_attribute`."))
    pair_attribute: str = Field(default="helpfulness", description="Attribute that orders built pairs.")
    ridge_alphas: list[PositiveFloat] = Field(default_factory=lambda: list(ARMO_RIDGE_ALPHAS), min_length=1,
                                              description=(
        "α grid of the ridge heads (no intercept); each objective takes the α with the lowest MSE on its "
        "held-out rows (ArmoRM stage 1)."))
    ridge_validation_fraction: float = Field(default=0.2, gt=0, lt=1, description=(
        "Share of the training rows held out to choose α; the heads are fitted on the rest."))
    decorrelate: str | None = Field(default="verbosity", description=(
        "The verbosity objective (r'_i = r_i - λ_i r_v; r'_v = 0); null: no de-correlation."))
    decorrelate_rule: Literal["corr_threshold", "covariance"] = Field(default="corr_threshold", description=(
        "corr_threshold (ArmoRM): λ_i is the smallest penalty on the reference grid with "
        "Spearman(r_i - λ r_v, r_v) <= corr_threshold, else 1; covariance: λ_i = cov(r_i, r_v)/var(r_v)."))
    corr_threshold: float = Field(default=0.03, ge=-1, le=1, description=(
        "Spearman threshold of the corr_threshold rule (ArmoRM default 0.03)."))
    gating_n_hidden: int = Field(default=3, ge=0, description="Hidden layers of the gating MLP.")
    gating_hidden_dim: int = Field(default=1024, ge=1, description="Width of each hidden layer.")
    gating_temperature: float = Field(default=10.0, gt=0, description="softmax(logits / temperature).")
    gating_dropout: float = Field(default=0.2, ge=0, lt=1, description="Dropout after each hidden layer.")
    gating_logit_scale: float = Field(default=1.0, gt=0, description=(
        "Initial value of the learnt scale on the gate's weights (the BT temperature)."))
    gating_steps: int = Field(default=2000, ge=1, description="AdamW steps of the gating MLP.")
    gating_batch_size: int = Field(default=1024, ge=1, description="Pairs per gating step (sampled).")
    gating_learning_rate: float = Field(default=1e-3, gt=0, description="Peak learning rate (cosine).")
    gating_weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay.")

    @model_validator(mode="after")
    def _checked(self) -> MultiObjectiveOptions:
        _named_attributes(self, [("decorrelate", self.decorrelate), ("pair_attribute", self.pair_attribute)])
        return self


def _named_attributes(options: Any, named: list[tuple[str, str | None]]) -> None:
    for field_name, attribute in named:
        if attribute is not None and attribute not in options.attributes:
            raise ValueError(f"rm.{field_name}: {attribute!r} is not one of rm.attributes {options.attributes}")


def _default_objective(value: Any) -> Any:
    return {"objective": "bt", **value} if isinstance(value, dict) and "objective" not in value else value


RewardOptions = Annotated[
    Union[BTOptions, MarginOptions, ScaledBTOptions, RegressionOptions, RegressionThenScaledBTOptions,
          MultiObjectiveOptions],
    Field(discriminator="objective"), BeforeValidator(_default_objective)]
OBJECTIVES = tuple(get_args(c.model_fields["objective"].annotation)[0] for c in get_args(get_args(RewardOptions)[0]))


# ---- one config per method, joined on `kind`

class _TrainBase(_Strict):
    model: str = Field(description="Base model: bundled name, local folder (relative to the YAML) or hub id.")
    data: DataSource = Field(description="Training rows.")
    eval_fraction: float = Field(default=0.1, ge=0, lt=1, description=(
        "Share of rows held out (chosen by id hash, so stable across runs) and evaluated at the end."))
    output_dir: str | None = Field(default=None, description=(
        "Parent folder (or s3:// URL) of run folders; default: the store's `_artifacts/train-runs`. A relative "
        "path is relative to the working directory, and refused inside a Ray job's (deleted with the job)."))
    run_name: str | None = Field(default=None, description=(
        "Prefix of the run folder name (default: the kind); the folder is PREFIX-<hash of store, rows and "
        "config without max_steps>, so only the same config on the same rows resumes it."))
    resume: bool = Field(default=True, description="Continue from the run's last checkpoint when there is one.")
    lora: LoraOptions | None = Field(default=None, description="LoRA adapter (peft); null: full fine-tuning.")
    training: Optimisation = Field(default_factory=Optimisation)
    ray: RayOptions = Field(default_factory=RayOptions)

    def options(self) -> BaseModel:
        """The method's own section (`sft:`, `dpo:`, `simpo:` or `rm:`)."""
        return getattr(self, self.kind)  # type: ignore[attr-defined]

    def method(self) -> str:
        """What `training_runs.method` records: the kind, or the reward objective."""
        return self.kind  # type: ignore[attr-defined]


class SFTConfig(_TrainBase):
    kind: Literal["sft"] = Field(description="Set by the command (`factory train sft`); if given it must match.")
    sft: SFTOptions = Field(default_factory=SFTOptions)


class DPOConfig(_TrainBase):
    kind: Literal["dpo"] = Field(description="Set by the command (`factory train dpo`); if given it must match.")
    dpo: DPOOptions = Field(default_factory=DPOOptions)


class SimPOConfig(_TrainBase):
    kind: Literal["simpo"] = Field(description="Set by the command (`factory train simpo`); if given it must match.")
    simpo: SimPOOptions = Field(default_factory=SimPOOptions)


class RewardConfig(_TrainBase):
    kind: Literal["rm"] = Field(description="Set by the command (`factory train rm`); if given it must match.")
    rm: RewardOptions = Field(default_factory=BTOptions)

    def method(self) -> str:
        return self.rm.objective


TrainConfig = Annotated[Union[SFTConfig, RewardConfig, DPOConfig, SimPOConfig], Field(discriminator="kind")]
CONFIGS: dict[str, type[_TrainBase]] = {get_args(c.model_fields["kind"].annotation)[0]: c
                                        for c in get_args(get_args(TrainConfig)[0])}
KINDS = tuple(CONFIGS)  # the one list of training kinds: sft, rm, dpo, simpo
_ADAPTER: TypeAdapter[Any] = TypeAdapter(TrainConfig)


def _problem(error: Any) -> str:
    """One validation error as `yaml.path: message`, without the union tags pydantic puts in the path."""
    location = list(error["loc"][1:])  # [0] is the kind's tag
    if location[:1] == ["rm"] and len(location) > 1 and location[1] in OBJECTIVES:
        del location[1]
    return f"{format_location(tuple(location)) or '(top)'}: {error['msg']}"


def parse_train_config(raw: Any, kind: str, base_dir: Path, source: str = "<train config>") -> TrainConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a training config is a YAML mapping with 'model' and 'data'")
    if kind not in KINDS:
        raise ConfigError(f"{source}: unknown training kind {kind!r} (choose from {', '.join(KINDS)})")
    if raw.get("kind", kind) != kind:
        raise ConfigError(f"{source}: kind: the config says {raw['kind']!r} but the command is 'factory train {kind}'")
    stray = sorted(set(raw) & (set(KINDS) - {kind}))
    try:
        config = _ADAPTER.validate_python({**raw, "kind": kind})
    except ValidationError as exc:
        if stray:  # extra keys, named as what they are: another method's section
            raise ConfigError(f"{source}: section(s) {', '.join(stray)} do not apply to 'factory train {kind}'") from None
        raise ConfigError(f"{source}: {'; '.join(map(_problem, exc.errors()))}") from None
    config.model = check_model_name(config.model, f"{source}: model", base_dir)
    if config.output_dir is not None and "://" not in config.output_dir:  # like the store: relative to the working dir
        config.output_dir = str(Path(config.output_dir).expanduser().resolve())
    return config


def load_train_config(path: str | Path, kind: str) -> TrainConfig:
    path = Path(path)
    raw = load_yaml_file(path, "training config")
    return parse_train_config(raw, kind, path.parent.resolve(), str(path))

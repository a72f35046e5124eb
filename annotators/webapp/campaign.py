"""A rating campaign: which items people rate, what they rate, and who may rate (YAML -> pydantic).

Secrets stay out of the YAML where possible: each account gives either a literal `token` (fine
for a demo on a laptop) or `token_env`, the name of an environment variable read at load time.
"""

from __future__ import annotations

import hmac
import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from annotators.helpsteer.stages import AggregateConfig
from factory.config import format_location
from factory.errors import ConfigError
from factory.ids import stable_hash
from factory.redact import register
from factory.store import DatasetName
from factory.yaml_errors import parse_yaml

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MIN_TOKEN_LENGTH = 8


class Account(BaseModel):
    """A secret token, literal or from the environment."""

    model_config = ConfigDict(extra="forbid")

    token: str | None = Field(default=None, description="The secret token itself (keep the YAML private).")
    token_env: str | None = Field(default=None, description="Name of an environment variable holding the token.")

    @model_validator(mode="after")
    def _one_source(self) -> Account:
        if (self.token is None) == (self.token_env is None):
            raise ValueError("give exactly one of 'token' or 'token_env'")
        if self.token is not None and len(self.token) < MIN_TOKEN_LENGTH:
            raise ValueError(f"token must be at least {MIN_TOKEN_LENGTH} characters")
        return self

    def secret(self, where: str) -> str:
        if self.token is not None:
            return self.token
        value = os.environ.get(self.token_env or "", "")
        if len(value) < MIN_TOKEN_LENGTH:
            state = "is not set" if not value else f"is shorter than {MIN_TOKEN_LENGTH} characters"
            raise ConfigError(f"{where}.token_env: environment variable {self.token_env} {state}")
        return value


class Rater(Account):
    id: str = Field(description="The rater's id, written to the `rater` column of every row they submit.")


class Source(BaseModel):
    """Where the items come from: a store data set (or a seed file) and a SQL filter."""

    model_config = ConfigDict(extra="forbid")

    dataset: DatasetName | None = Field(default=None, description="Store data set of responses (e.g. `responses`).")
    seed: Path | None = Field(default=None, description="Or a JSONL/Parquet file of items, relative to the YAML.")
    where: str | None = Field(default=None, description="SQL predicate selecting the rows (error rows are always left out).")
    limit: int | None = Field(default=None, ge=1, description="At most this many items (the first by id).")
    group_by: str = Field(
        default="parent_id", description="Preference tasks: rows with equal values are responses to one prompt, paired."
    )
    max_pairs_per_prompt: int | None = Field(default=1, ge=1, description="Preference tasks: pairs per prompt (None: all).")

    @model_validator(mode="after")
    def _one_source(self) -> Source:
        if (self.dataset is None) == (self.seed is None):
            raise ValueError("give exactly one of 'dataset' (a store data set) or 'seed' (a file)")
        return self


class Campaign(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Campaign name: part of every row id and of the rows' `stage` ('annotate/<name>').")
    title: str | None = Field(default=None, description="Heading shown to raters.")
    instructions: str | None = Field(default=None, description="Markdown shown above the item (guidelines, links).")
    source: Source = Field(description="The items to rate.")
    task: Literal["ratings", "preference", "both"] = Field(
        description="'ratings': five 0-4 attributes per response; 'preference': -3..+3 between two responses "
                    "with a justification; 'both': the pair's attributes and the preference."
    )
    raters_per_item: int = Field(default=3, ge=1, description="How many raters each item is assigned to.")
    raters: list[Rater] = Field(min_length=1, description="Rater accounts.")
    owner: Account = Field(description="The owner's token: it opens the overview page.")
    seed: int = Field(default=0, description="Salt of the deterministic assignment and item order.")
    secure_cookie: bool = Field(
        default=False, description="Mark the session cookie `Secure` (sent over HTTPS only) even when the app sees "
        "plain HTTP, e.g. behind a TLS proxy that does not forward the scheme; it is always so over HTTPS.")
    aggregate: AggregateConfig = Field(
        default_factory=AggregateConfig,
        description="HelpSteer2 aggregation for the overview and `factory annotate export` (keep, max_spread, min_raters).",
    )
    ratings_output: DatasetName = Field(default="ratings", description="Data set the attribute ratings go to.")
    preferences_output: DatasetName = Field(default="helpsteer_preferences",
                                            description="Data set the preferences go to.")

    base_dir: Path = Field(default=Path("."), exclude=True, description="Folder of the YAML (set by load_campaign).")

    @model_validator(mode="after")
    def _check(self) -> Campaign:
        if not NAME.match(self.name):
            raise ValueError(f"name {self.name!r}: use letters, digits, '_', '-', '.'")
        ids = [r.id for r in self.raters]
        for rater_id in ids:
            if not NAME.match(rater_id):
                raise ValueError(f"rater id {rater_id!r}: use letters, digits, '_', '-', '.'")
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"rater ids must be unique: {', '.join(duplicates)} repeated")
        if self.raters_per_item > len(self.raters):
            raise ValueError(f"raters_per_item is {self.raters_per_item} but only {len(self.raters)} raters are listed")
        return self

    @property
    def stage(self) -> str:
        """The `stage` column of the rows this campaign writes: how its rows are told apart."""
        return f"annotate/{self.name}"

    @property
    def fingerprint(self) -> str:
        return stable_hash("annotate", self.name, self.task)

    @property
    def responses_per_item(self) -> int:
        return 1 if self.task == "ratings" else 2


class Tokens:
    """Token -> identity lookup, compared in constant time."""

    def __init__(self, campaign: Campaign):
        self.raters = {r.id: r.secret(f"raters[{i}]") for i, r in enumerate(campaign.raters)}
        self.owner = campaign.owner.secret("owner")
        secrets = [*self.raters.values(), self.owner]
        for secret in secrets:  # never printed or logged by this process
            register(secret)
        if len(set(secrets)) != len(secrets):
            raise ConfigError("every rater and the owner need distinct tokens")

    def identify(self, token: str) -> tuple[Literal["rater", "owner"], str] | None:
        found = None
        # Compare against every secret (no early exit), so timing does not tell which one matched.
        for rater_id, secret in self.raters.items():
            if hmac.compare_digest(token.encode(), secret.encode()):
                found = ("rater", rater_id)
        if hmac.compare_digest(token.encode(), self.owner.encode()):
            found = ("owner", "owner")
        return found


def load_campaign(path: str | Path) -> Campaign:
    """Parse a campaign YAML; every error names the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: campaign file not found")
    raw = parse_yaml(path.read_text(encoding="utf-8"), path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a campaign is a YAML mapping with name, source, task, raters and owner")
    try:
        campaign = Campaign.model_validate({**raw, "base_dir": path.parent})
    except ValidationError as exc:
        problems = [f"{format_location(tuple(e['loc'])) or 'campaign'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"{path}: {'; '.join(problems)}") from None
    return campaign

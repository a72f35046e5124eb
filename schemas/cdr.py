"""Data sets `rewards` and `preferences`: CDR density-ratio rewards and the pairs built from them."""

from pydantic import Field

from schemas.common import BaseRow


class RewardRow(BaseRow):
    """One scored response (stage `cdr`). `parent_id` is the prompt (the group of N responses)."""

    response_id: str | None = Field(default=None, description="Id of the scored row in the input data set.")
    prompt: str | None = Field(default=None, description="The user prompt.")
    response: str | None = Field(default=None, description="The scored response.")
    domain: str | None = Field(default=None, description="Router label SAFETY / REASONING / CHAT; None when the stage has no router.")
    reward: float | None = Field(default=None, description="sum log pi_strong(y_t) - sum log pi_weak(y_t) over response tokens.")
    strong_logprob: float | None = Field(default=None, description="Summed log-probability of the response under the strong model.")
    weak_logprob: float | None = Field(default=None, description="Summed log-probability of the response under the weak model.")
    strong_tokens: int | None = Field(default=None, description="Response length in the strong model's tokens.")
    weak_tokens: int | None = Field(default=None, description="Response length in the weak model's tokens.")
    weak_model: str | None = Field(default=None, description="The weak model (column `model` is the strong one).")


class PreferenceRow(BaseRow):
    """One on-policy preference pair per prompt (stage `cdr_pairs`)."""

    prompt: str = Field(description="The user prompt.")
    chosen: str = Field(description="The highest-reward response.")
    rejected: str = Field(description="A random non-max response (or the lowest, rule 'argmin').")
    chosen_id: str = Field(description="`response_id` of the chosen response.")
    rejected_id: str = Field(description="`response_id` of the rejected response.")
    chosen_reward: float = Field(description="CDR reward of the chosen response.")
    rejected_reward: float = Field(description="CDR reward of the rejected response.")
    margin: float = Field(description="chosen_reward - rejected_reward (> 0).")
    domain: str | None = Field(default=None, description="Router domain of the prompt.")
    candidates: int = Field(description="Scored responses the pair was chosen from.")
    rule: str = Field(description="How the rejected response was picked: 'random' or 'argmin'.")

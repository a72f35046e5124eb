"""The training methods by kind: the one table `factory train KIND`, a pipeline's `train:` step and
the Ray Train workers look a method up in (a config's kind is one of trainers.config.KINDS)."""

from __future__ import annotations

from trainers.common import Method
from trainers.config import KINDS
from trainers.dpo import DPO
from trainers.reward import Reward
from trainers.sft import SFT
from trainers.simpo import SimPO

METHODS: dict[str, Method] = {method.kind: method for method in (SFT(), Reward(), DPO(), SimPO())}
assert tuple(METHODS) == KINDS, "every kind of trainers.config has its method, in the same order"

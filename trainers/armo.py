"""ArmoRM's maths on embeddings (arXiv 2406.12845; DESIGN.md §4), independent of any backbone.

Follows the reference code, RLHFlow/RLHF-Reward-Modeling `armo-rm/` (stage-1_train.py, stage-2_train.py,
and the released model's modeling_custom.py); docs/trainers.md lists where we depart from it.

1. Ridge heads: one scikit-learn `Ridge(fit_intercept=False)` per objective on the response's last-token
   embedding. The training rows are split once (held-out share `validation_fraction`); each objective
   takes the α of the grid with the lowest MSE on its labelled held-out rows and keeps the head fitted
   on its labelled training rows.
2. Verbosity de-correlation: r'_i = r_i − λ_i·r_v, i.e. rewards @ T with T = I, T[v, :] −= λ.
   `corr_threshold` (the reference's rule): λ_i is the smallest penalty of the reference grid with
   Spearman(r_i − λ·r_v, r_v) ≤ threshold, 1 if none is; `covariance`: λ_i = cov(r_i, r_v)/var(r_v)
   (no linear correlation left). λ_v = 1 either way, so r'_v = 0.
3. Gating network on the prompt embedding: n_hidden × (Linear, ReLU, dropout), Linear, softmax of the
   logits / temperature, times a learnt logit scale; the reward is Σ_i g_i(x)·r'_i. Trained with
   −log σ(s_c − s_r) on sampled mini-batches of preference pairs, AdamW with a cosine schedule.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from scipy.stats import spearmanr
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn import functional as F

# stage-2_train.py's `find_proper_verbosity_penalties` tries these, smallest first.
VERBOSITY_PENALTIES = (0.0, 0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5,
                       0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


@dataclass(frozen=True)
class GatingArchitecture:
    """The reference GatingNetwork's knobs (stage-2_train.py defaults)."""

    n_hidden: int = 3
    hidden_dim: int = 1024
    temperature: float = 10.0
    dropout: float = 0.2
    logit_scale: float = 1.0


class GatingNetwork(nn.Module):
    def __init__(self, in_features: int, out_features: int, architecture: GatingArchitecture):
        super().__init__()
        self.architecture = architecture
        widths = [in_features] + [architecture.hidden_dim] * architecture.n_hidden
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)]
                                    + [nn.Linear(widths[-1], out_features)])
        self.logit_scale = nn.Parameter(torch.ones(1) * architecture.logit_scale)

    def mixing(self, x: torch.Tensor) -> torch.Tensor:
        """[N, K] softmax weights over the objectives (rows sum to 1)."""
        for layer in self.layers[:-1]:
            x = F.dropout(F.relu(layer(x)), p=self.architecture.dropout, training=self.training)
        return torch.softmax(self.layers[-1](x) / self.architecture.temperature, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reference's gate output: the mixing weights times the learnt logit scale."""
        return self.mixing(x) * self.logit_scale[0]


@dataclass
class ObjectiveHeads:
    """Ridge heads, de-correlation and gating: everything after the backbone."""

    objectives: list[str]
    coef: np.ndarray  # [n_objectives, dim]; no intercept, as the reference
    alphas: list[float]  # the ridge α each objective chose
    validation_mse: list[float]  # each head's MSE on its held-out rows (NaN: none held out)
    decorrelate: str | None = None
    penalties: np.ndarray | None = None  # λ per objective; λ_v = 1
    gating: GatingNetwork | None = None

    def raw(self, embeddings: np.ndarray) -> np.ndarray:
        return embeddings @ self.coef.T

    def transform(self) -> np.ndarray:
        """The reference's reward_transform_matrix: identity, λ subtracted from the verbosity row."""
        matrix = np.eye(len(self.objectives))
        if self.decorrelate is not None and self.penalties is not None:
            matrix[self.objectives.index(self.decorrelate), :] -= self.penalties
        return matrix

    def adjusted(self, raw: np.ndarray) -> np.ndarray:
        """[N, n_objectives]: r'_i = r_i − λ_i·r_v (the verbosity column is 0)."""
        return raw @ self.transform()

    def weights(self, prompt_embeddings: np.ndarray) -> np.ndarray:
        """Mixing weights (softmax, before the logit scale)."""
        assert self.gating is not None, "gating not fitted"
        with torch.no_grad():
            return self.gating.eval().mixing(torch.as_tensor(prompt_embeddings, dtype=torch.float32)).numpy()

    def reward(self, embeddings: np.ndarray, prompt_embeddings: np.ndarray) -> np.ndarray:
        assert self.gating is not None, "gating not fitted"
        with torch.no_grad():
            gate = self.gating.eval()(torch.as_tensor(prompt_embeddings, dtype=torch.float32)).numpy()
        return (gate * self.adjusted(self.raw(embeddings))).sum(axis=1)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {"coef": torch.as_tensor(self.coef, dtype=torch.float32),
                   "transform": torch.as_tensor(self.transform(), dtype=torch.float32)}
        if self.penalties is not None:
            tensors["penalties"] = torch.as_tensor(self.penalties, dtype=torch.float32)
        if self.gating is not None:
            tensors |= {f"gating.{k}": v.contiguous() for k, v in self.gating.state_dict().items()}
        save_file(tensors, str(folder / "heads.safetensors"))
        (folder / "heads.json").write_text(json.dumps(
            {"objectives": self.objectives, "alphas": self.alphas,
             "validation_mse": [m if np.isfinite(m) else None for m in self.validation_mse],  # JSON has no NaN
             "decorrelate": self.decorrelate,
             "gating": None if self.gating is None else asdict(self.gating.architecture)}, indent=2))

    @classmethod
    def load(cls, folder: Path) -> ObjectiveHeads:
        meta = json.loads((folder / "heads.json").read_text())
        tensors = load_file(str(folder / "heads.safetensors"))
        penalties = tensors["penalties"].double().numpy() if "penalties" in tensors else None
        validation_mse = [float("nan") if m is None else m for m in meta["validation_mse"]]
        heads = cls(meta["objectives"], tensors["coef"].double().numpy(), meta["alphas"], validation_mse,
                    meta["decorrelate"], penalties)
        if meta["gating"] is not None:
            state = {k.removeprefix("gating."): v for k, v in tensors.items() if k.startswith("gating.")}
            gating = GatingNetwork(state["layers.0.weight"].shape[1], len(heads.objectives),
                                   GatingArchitecture(**meta["gating"]))
            gating.load_state_dict(state)
            heads.gating = gating.eval()
        return heads


def _mse(ridge: Ridge, x: np.ndarray, y: np.ndarray) -> float:
    return float(((ridge.predict(x) - y) ** 2).mean()) if len(y) else float("nan")


def fit_ridge_heads(embeddings: np.ndarray, labels: np.ndarray, objectives: list[str], alphas: list[float],
                    validation_fraction: float, seed: int = 0) -> ObjectiveHeads:
    """labels: [N, n_objectives] with NaN for a missing label. ArmoRM stage 1: α per objective on held-out rows."""
    if not alphas:
        raise ValueError("rm.ridge_alphas: the α grid is empty")
    train_rows, held_rows = train_test_split(np.arange(len(embeddings)), test_size=validation_fraction,
                                             random_state=seed)
    coef = np.zeros((len(objectives), embeddings.shape[1]))
    chosen, held_mse = [], []
    for i, name in enumerate(objectives):
        fit = train_rows[~np.isnan(labels[train_rows, i])]
        held = held_rows[~np.isnan(labels[held_rows, i])]
        if len(fit) < 2:
            raise ValueError(f"objective {name!r} has {len(fit)} labelled training rows; a ridge head needs at least 2")
        if len(alphas) > 1 and not len(held):
            raise ValueError(f"objective {name!r} has no labelled held-out row to choose α on: raise "
                             "rm.ridge_validation_fraction, or give rm.ridge_alphas a single value")
        ridges = [Ridge(alpha=alpha, fit_intercept=False).fit(embeddings[fit], labels[fit, i]) for alpha in alphas]
        losses = [_mse(r, embeddings[held], labels[held, i]) for r in ridges]
        best = int(np.argmin(losses)) if len(held) else 0  # first α on ties, as pandas' idxmin in the reference
        coef[i] = ridges[best].coef_
        chosen.append(float(alphas[best]))
        held_mse.append(losses[best])
    return ObjectiveHeads(objectives, coef, chosen, held_mse)


def corr_threshold_penalties(rewards: np.ndarray, verbosity: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The reference's verbosity penalties: per objective, the smallest grid λ with
    Spearman(r_i − λ·r_v, r_v) ≤ threshold; 1 where no λ of the grid gets there (and for r_v itself).
    Returns (penalties, the Spearman correlation reached)."""
    penalties = np.ones(rewards.shape[1])
    reached = np.ones(rewards.shape[1])
    pending = [i for i in range(rewards.shape[1]) if i != verbosity]
    for penalty in VERBOSITY_PENALTIES:
        if not pending:
            break
        adjusted = rewards - penalty * rewards[:, [verbosity]]
        for i in list(pending):
            corr = spearmanr(adjusted[:, i], rewards[:, verbosity]).statistic
            if corr <= threshold:
                penalties[i], reached[i] = penalty, corr
                pending.remove(i)
            else:  # the reference keeps the lowest correlation seen (NaN compares false: kept as is)
                reached[i] = min(reached[i], corr)
    return penalties, reached


def covariance_penalties(rewards: np.ndarray, verbosity: int) -> np.ndarray:
    """λ_i = cov(r_i, r_v)/var(r_v): r_i − λ_i·r_v has no linear correlation with r_v; λ_v = 1."""
    reference = rewards[:, verbosity]
    variance = reference.var()
    penalties = np.array([np.cov(rewards[:, i], reference, bias=True)[0, 1] / variance if variance > 0 else 0.0
                          for i in range(rewards.shape[1])])
    penalties[verbosity] = 1.0
    return penalties


def decorrelate_verbosity(heads: ObjectiveHeads, reference_embeddings: np.ndarray, verbosity: str, rule: str,
                          threshold: float) -> None:
    """Sets heads.penalties from the rewards of `reference_embeddings` (the reference: the pairs' responses)."""
    if verbosity not in heads.objectives:
        raise ValueError(f"rm.decorrelate: {verbosity!r} is not one of the objectives {heads.objectives}")
    rewards, index = heads.raw(reference_embeddings), heads.objectives.index(verbosity)
    if rule == "corr_threshold":
        penalties = corr_threshold_penalties(rewards, index, threshold)[0]
    elif rule == "covariance":
        penalties = covariance_penalties(rewards, index)
    else:
        raise ValueError(f"rm.decorrelate_rule: unknown rule {rule!r} (corr_threshold or covariance)")
    heads.decorrelate, heads.penalties = verbosity, penalties


def fit_gating(heads: ObjectiveHeads, prompts: np.ndarray, chosen: np.ndarray, rejected: np.ndarray,
               architecture: GatingArchitecture, steps: int, batch_size: int, learning_rate: float = 1e-3,
               weight_decay: float = 0.0, seed: int = 0) -> list[float]:
    """ArmoRM stage 2: per step a batch of pairs drawn with replacement, −log σ(s_c − s_r), AdamW with
    cosine annealing. Sets heads.gating (eval mode) and returns the loss per step."""
    torch.manual_seed(seed)
    gating = GatingNetwork(prompts.shape[1], len(heads.objectives), architecture)
    prompt_t = torch.as_tensor(prompts, dtype=torch.float32)
    # Per-objective reward margins on the adjusted rewards, the ones the gate mixes when scoring.
    margin = torch.as_tensor(heads.adjusted(heads.raw(chosen)) - heads.adjusted(heads.raw(rejected)),
                             dtype=torch.float32)
    optimizer = torch.optim.AdamW(gating.parameters(), lr=learning_rate, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    sampler = torch.Generator().manual_seed(seed)
    gating.train()
    losses = []
    for _ in range(steps):
        batch = torch.randint(0, len(prompt_t), (batch_size,), generator=sampler)
        optimizer.zero_grad()
        score_gap = (gating(prompt_t[batch]) * margin[batch]).sum(dim=1)
        loss = -F.logsigmoid(score_gap).mean()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
    heads.gating = gating.eval()
    return losses

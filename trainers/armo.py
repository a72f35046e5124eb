"""ArmoRM's maths on embeddings (arXiv 2406.12845; DESIGN.md §4), independent of any backbone.

1. One ridge regression per objective on the response's last-token embedding (scikit-learn Ridge),
   each fitted on the rows that have that label.
2. Verbosity de-correlation: r'_i = r_i − λ_i·r_v with λ_i = cov(r_i, r_v)/var(r_v) on the training
   rows, so no adjusted objective correlates (linearly) with verbosity; r_v itself leaves the mix.
3. A gating MLP on the prompt embedding gives softmax weights over the adjusted objectives; the reward
   is Σ_i w_i(x)·r'_i. It is trained on preference pairs with a BT loss on β·(s_c − s_r), β learnt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from sklearn.linear_model import Ridge
from torch import nn


class Gating(nn.Module):
    def __init__(self, prompt_dim: int, n_objectives: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(prompt_dim, hidden), nn.GELU(), nn.Linear(hidden, n_objectives))
        self.log_beta = nn.Parameter(torch.zeros(()))  # BT temperature, learnt with the gate

    def forward(self, prompt_embeddings: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(prompt_embeddings), dim=-1)


@dataclass
class ObjectiveHeads:
    """Ridge heads, de-correlation and gating: everything after the backbone."""

    objectives: list[str]
    coef: np.ndarray  # [n_objectives, dim]
    intercept: np.ndarray  # [n_objectives]
    decorrelate: str | None
    lambdas: np.ndarray  # [n_objectives]; 0 for objectives not adjusted
    gating: Gating | None = None

    @property
    def mixed(self) -> list[str]:
        """Objectives the gate mixes (all but the de-correlation reference)."""
        return [o for o in self.objectives if o != self.decorrelate]

    def raw(self, embeddings: np.ndarray) -> np.ndarray:
        return embeddings @ self.coef.T + self.intercept

    def adjusted(self, raw: np.ndarray) -> np.ndarray:
        """[N, len(mixed)]: each mixed objective minus λ times the reference objective."""
        if self.decorrelate is None:
            return raw
        ref = raw[:, self.objectives.index(self.decorrelate)][:, None]
        keep = [i for i, o in enumerate(self.objectives) if o != self.decorrelate]
        return (raw - self.lambdas[None, :] * ref)[:, keep]

    def weights(self, prompt_embeddings: np.ndarray) -> np.ndarray:
        assert self.gating is not None, "gating not fitted"
        with torch.no_grad():
            return self.gating(torch.as_tensor(prompt_embeddings, dtype=torch.float32)).numpy()

    def reward(self, embeddings: np.ndarray, prompt_embeddings: np.ndarray) -> np.ndarray:
        return (self.weights(prompt_embeddings) * self.adjusted(self.raw(embeddings))).sum(axis=1)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {"coef": torch.as_tensor(self.coef, dtype=torch.float32),
                   "intercept": torch.as_tensor(self.intercept, dtype=torch.float32),
                   "lambdas": torch.as_tensor(self.lambdas, dtype=torch.float32)}
        if self.gating is not None:
            tensors |= {f"gating.{k}": v.contiguous() for k, v in self.gating.state_dict().items()}
        save_file(tensors, str(folder / "heads.safetensors"))
        hidden = self.gating.net[0].out_features if self.gating is not None else None
        (folder / "heads.json").write_text(json.dumps(
            {"objectives": self.objectives, "decorrelate": self.decorrelate, "gating_hidden": hidden}, indent=2))

    @classmethod
    def load(cls, folder: Path) -> ObjectiveHeads:
        meta = json.loads((folder / "heads.json").read_text())
        tensors = load_file(str(folder / "heads.safetensors"))
        heads = cls(meta["objectives"], tensors["coef"].numpy(), tensors["intercept"].numpy(), meta["decorrelate"],
                    tensors["lambdas"].numpy())
        if meta["gating_hidden"] is not None:
            gating_state = {k.removeprefix("gating."): v for k, v in tensors.items() if k.startswith("gating.")}
            gating = Gating(gating_state["net.0.weight"].shape[1], len(heads.mixed), meta["gating_hidden"])
            gating.load_state_dict(gating_state)
            heads.gating = gating.eval()
        return heads


def fit_ridge_heads(embeddings: np.ndarray, labels: np.ndarray, objectives: list[str], alpha: float,
                    decorrelate: str | None) -> ObjectiveHeads:
    """labels: [N, n_objectives] with NaN for a missing label."""
    coef = np.zeros((len(objectives), embeddings.shape[1]))
    intercept = np.zeros(len(objectives))
    for i, name in enumerate(objectives):
        rows = ~np.isnan(labels[:, i])
        if rows.sum() < 2:
            raise ValueError(f"objective {name!r} has {int(rows.sum())} labelled rows; a ridge head needs at least 2")
        ridge = Ridge(alpha=alpha).fit(embeddings[rows], labels[rows, i])
        coef[i], intercept[i] = ridge.coef_, ridge.intercept_
    heads = ObjectiveHeads(objectives, coef, intercept, decorrelate, np.zeros(len(objectives)))
    if decorrelate is not None:
        if decorrelate not in objectives:
            raise ValueError(f"decorrelate: {decorrelate!r} is not one of the objectives {objectives}")
        raw = heads.raw(embeddings)
        ref = raw[:, objectives.index(decorrelate)]
        variance = ref.var()
        lambdas = np.array([np.cov(raw[:, i], ref, bias=True)[0, 1] / variance if variance > 0 else 0.0
                            for i in range(len(objectives))])
        lambdas[objectives.index(decorrelate)] = 0.0
        heads.lambdas = lambdas
    return heads


def fit_gating(heads: ObjectiveHeads, prompts: np.ndarray, chosen: np.ndarray, rejected: np.ndarray,
               hidden: int, epochs: int, learning_rate: float = 0.01, seed: int = 0) -> list[float]:
    """Full-batch Adam on −log σ(β(s_c − s_r)); sets heads.gating, returns the loss per epoch."""
    torch.manual_seed(seed)
    gating = Gating(prompts.shape[1], len(heads.mixed), hidden)
    prompt_t = torch.as_tensor(prompts, dtype=torch.float32)
    margin = torch.as_tensor(heads.adjusted(heads.raw(chosen)) - heads.adjusted(heads.raw(rejected)), dtype=torch.float32)
    optimizer = torch.optim.Adam(gating.parameters(), lr=learning_rate)
    losses = []
    for _ in range(epochs):
        optimizer.zero_grad()
        score_gap = (gating(prompt_t) * margin).sum(dim=1)
        loss = -nn.functional.logsigmoid(gating.log_beta.exp() * score_gap).mean()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    heads.gating = gating.eval()
    return losses

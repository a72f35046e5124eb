"""ArmoRM-style multi-objective reward on a frozen backbone, saved as a scorer the annotators can load.

The backbone is never trained: last-token hidden states of "prompt + response" (chat template
applied) feed the ridge heads, last-token states of the prompt alone (with the generation prompt)
feed the gate. The maths lives in trainers/armo.py.

    scorer = MultiObjectiveScorer.load("train-runs/rm-xyz/final")
    scorer.score(["Explain DNS."], ["DNS maps names to addresses..."])      # one float per pair
    scorer.score_objectives(["Explain DNS."], ["..."])                      # per-objective values
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from transformers import AutoModel, PreTrainedTokenizerBase

from trainers.armo import (
    GatingArchitecture,
    ObjectiveHeads,
    decorrelate_verbosity,
    fit_gating,
    fit_ridge_heads,
)
from trainers.common import load_tokenizer
from trainers.config import MultiObjectiveOptions, RewardConfig

Conversation = list[dict[str, str]]


class Embedder:
    """Last-token hidden states of a frozen causal LM's backbone."""

    def __init__(self, model_path: str, max_length: int = 512, batch_size: int = 8,
                 tokenizer: PreTrainedTokenizerBase | None = None):
        self.model_path = model_path
        self.tokenizer = tokenizer or load_tokenizer(model_path)
        self.model = AutoModel.from_pretrained(model_path, dtype=torch.float32).eval()
        self.max_length = max_length
        self.batch_size = batch_size

    def _text(self, conversation: Conversation, prompt_only: bool) -> str:
        if self.tokenizer.chat_template is None:
            return "\n".join(m["content"] for m in conversation)
        return self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=prompt_only)

    @torch.no_grad()
    def embed(self, conversations: list[Conversation], prompt_only: bool = False) -> np.ndarray:
        out = []
        for start in range(0, len(conversations), self.batch_size):
            texts = [self._text(c, prompt_only) for c in conversations[start : start + self.batch_size]]
            # Left truncation keeps the end of the text, where the last token (the one we read) is.
            self.tokenizer.truncation_side = "left"
            batch = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                                   max_length=self.max_length, add_special_tokens=False)
            hidden = self.model(**batch).last_hidden_state
            last = batch["attention_mask"].sum(dim=1) - 1 if self.tokenizer.padding_side == "right" else \
                torch.full((hidden.shape[0],), hidden.shape[1] - 1)
            out.append(hidden[torch.arange(hidden.shape[0]), last].float().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.config.hidden_size))


def _user(prompt: str | Conversation) -> Conversation:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


class MultiObjectiveScorer:
    """A saved multi-objective reward: `score` gives one scalar per (prompt, response)."""

    def __init__(self, embedder: Embedder, heads: ObjectiveHeads):
        self.embedder = embedder
        self.heads = heads

    @classmethod
    def load(cls, folder: str | Path, batch_size: int = 8) -> MultiObjectiveScorer:
        folder = Path(folder)
        meta = json.loads((folder / "scorer.json").read_text())
        return cls(Embedder(meta["backbone"], meta["max_length"], batch_size), ObjectiveHeads.load(folder))

    def save(self, folder: Path) -> None:
        self.heads.save(folder)
        (folder / "scorer.json").write_text(json.dumps(
            {"backbone": self.embedder.model_path, "max_length": self.embedder.max_length,
             "objectives": self.heads.objectives}, indent=2))

    def _embed(self, prompts: list[Any], responses: list[str]) -> tuple[np.ndarray, np.ndarray]:
        conversations = [_user(p) + [{"role": "assistant", "content": r}] for p, r in zip(prompts, responses, strict=True)]
        return self.embedder.embed(conversations), self.embedder.embed([_user(p) for p in prompts], prompt_only=True)

    def score(self, prompts: list[str | Conversation], responses: list[str]) -> list[float]:
        embeddings, prompt_embeddings = self._embed(prompts, responses)
        return self.heads.reward(embeddings, prompt_embeddings).tolist()

    def score_objectives(self, prompts: list[str | Conversation], responses: list[str]) -> list[dict[str, float]]:
        embeddings, _ = self._embed(prompts, responses)
        raw = self.heads.raw(embeddings)
        return [dict(zip(self.heads.objectives, map(float, row), strict=True)) for row in raw]


def pairs_from_ratings(rated: datasets.Dataset, attribute_index: int) -> list[tuple[int, int]]:
    """(better, worse) row indices among responses to the same prompt, by one attribute; ties skipped."""
    groups: dict[str, list[int]] = {}
    for i, prompt in enumerate(rated["prompt"]):
        groups.setdefault(json.dumps(prompt, sort_keys=True), []).append(i)
    labels = rated["labels"]
    pairs = []
    for rows in groups.values():
        for a in range(len(rows)):
            for b in range(a + 1, len(rows)):
                x, y = labels[rows[a]][attribute_index], labels[rows[b]][attribute_index]
                if x is not None and y is not None and x != y:
                    pairs.append((rows[a], rows[b]) if x > y else (rows[b], rows[a]))
    return pairs


def _label_matrix(rated: datasets.Dataset) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in rated["labels"]], dtype=float)


def _gating_architecture(options: MultiObjectiveOptions) -> GatingArchitecture:
    return GatingArchitecture(n_hidden=options.gating_n_hidden, hidden_dim=options.gating_hidden_dim,
                              temperature=options.gating_temperature, dropout=options.gating_dropout,
                              logit_scale=options.gating_logit_scale)


def train_multi_objective(config: RewardConfig, train: datasets.Dataset, eval_: datasets.Dataset | None,
                          model_path: str, out: Path, pairs: datasets.Dataset | None = None) -> dict[str, Any]:
    """Fit heads and gate, save the scorer to `out`; returns steps, losses and evaluation."""
    options = config.rm
    embedder = Embedder(model_path, config.training.max_length)
    conversations = [p + c for p, c in zip(train["prompt"], train["completion"], strict=True)]
    embeddings = embedder.embed(conversations)
    heads = fit_ridge_heads(embeddings, _label_matrix(train), options.attributes, options.ridge_alphas,
                            options.ridge_validation_fraction, seed=config.training.seed)
    if pairs is not None:
        prompts = embedder.embed(pairs["prompt"], prompt_only=True)
        chosen = embedder.embed([p + c for p, c in zip(pairs["prompt"], pairs["chosen"], strict=True)])
        rejected = embedder.embed([p + r for p, r in zip(pairs["prompt"], pairs["rejected"], strict=True)])
    else:
        index = pairs_from_ratings(train, options.attributes.index(options.pair_attribute))
        if not index:
            raise ValueError(f"no preference pairs: no prompt has two responses with different "
                             f"{options.pair_attribute}; give rm.pairs")
        prompts = embedder.embed([train["prompt"][a] for a, _ in index], prompt_only=True)
        chosen, rejected = embeddings[[a for a, _ in index]], embeddings[[b for _, b in index]]
    if options.decorrelate is not None:
        # As the reference: the penalties come from the rewards of the preference pairs' responses.
        decorrelate_verbosity(heads, np.concatenate([chosen, rejected]), options.decorrelate,
                              options.decorrelate_rule, options.corr_threshold)
    losses = fit_gating(heads, prompts, chosen, rejected, _gating_architecture(options), options.gating_steps,
                        options.gating_batch_size, options.gating_learning_rate, options.gating_weight_decay,
                        seed=config.training.seed)
    accuracy = float((heads.reward(chosen, prompts) > heads.reward(rejected, prompts)).mean())
    evaluation: dict[str, float] = {"train_pair_accuracy": accuracy, "pairs": float(len(prompts))}
    assert heads.gating is not None
    evaluation["gating_logit_scale"] = float(heads.gating.logit_scale.detach()[0])
    for i, name in enumerate(options.attributes):
        evaluation[f"ridge_alpha_{name}"] = heads.alphas[i]
        if np.isfinite(heads.validation_mse[i]):
            evaluation[f"ridge_validation_mse_{name}"] = heads.validation_mse[i]
        if heads.penalties is not None and name != heads.decorrelate:
            evaluation[f"verbosity_penalty_{name}"] = float(heads.penalties[i])
    if eval_ is not None and len(eval_):
        held = embedder.embed([p + c for p, c in zip(eval_["prompt"], eval_["completion"], strict=True)])
        raw, labels = heads.raw(held), _label_matrix(eval_)
        for i, name in enumerate(options.attributes):
            mask = ~np.isnan(labels[:, i])
            if mask.any():
                evaluation[f"eval_mse_{name}"] = float(((raw[mask, i] - labels[mask, i]) ** 2).mean())
    MultiObjectiveScorer(embedder, heads).save(out)
    log = [{"step": step + 1, "loss": loss} for step, loss in enumerate(losses)
           if (step + 1) % max(1, options.gating_steps // 20) == 0 or step + 1 == len(losses)]
    return {"steps": len(losses), "final_loss": losses[-1], "log_history": log, "eval": evaluation,
            "mixing_weights": dict(zip(heads.objectives, heads.weights(prompts).mean(axis=0).tolist(), strict=True))}

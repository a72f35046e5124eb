"""ArmoRM maths (trainers/armo.py) against independent re-computations of the reference
(RLHFlow/RLHF-Reward-Modeling armo-rm: stage-1_train.py, stage-2_train.py, modeling_custom.py)."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.model_selection import train_test_split

from trainers.armo import (GatingArchitecture, GatingNetwork, ObjectiveHeads, corr_threshold_penalties,
                           covariance_penalties, decorrelate_verbosity, fit_gating, fit_ridge_heads)
from trainers.config import MultiObjectiveOptions

ALPHAS = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4]  # stage-1_train.py
PENALTIES = [0, 0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6,
             0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]  # stage-2_train.py, find_proper_verbosity_penalties


def _synthetic(n: int = 600, d: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(3, d))
    embeddings = rng.normal(size=(n, d))
    labels = embeddings @ weights.T + 0.05 * rng.normal(size=(n, 3))
    return rng, embeddings, labels


def _closed_form_ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """argmin ||y − xw||² + α||w||², no intercept."""
    return np.linalg.solve(x.T @ x + alpha * np.eye(x.shape[1]), x.T @ y)


def test_ridge_heads_have_no_intercept_and_pick_alpha_per_objective_on_held_out_rows():
    rng = np.random.default_rng(1)
    n, d = 240, 30
    x = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    labels = np.stack([x @ w + 0.01 * rng.normal(size=n),              # clean: a small α wins
                       0.02 * (x @ w) + 2.0 * rng.normal(size=n),      # mostly noise: a large α wins
                       x @ w + 3.0 + 0.5 * rng.normal(size=n)], axis=1)  # an offset no intercept absorbs
    labels[::4, 2] = np.nan
    heads = fit_ridge_heads(x, labels, ["clean", "noisy", "offset"], ALPHAS, validation_fraction=0.2, seed=7)

    train, held = train_test_split(np.arange(n), test_size=0.2, random_state=7)
    for i in range(3):
        fit, val = train[~np.isnan(labels[train, i])], held[~np.isnan(labels[held, i])]
        candidates = [_closed_form_ridge(x[fit], labels[fit, i], a) for a in ALPHAS]
        mse = [float(((x[val] @ c - labels[val, i]) ** 2).mean()) for c in candidates]
        best = int(np.argmin(mse))
        assert heads.alphas[i] == ALPHAS[best]
        np.testing.assert_allclose(heads.coef[i], candidates[best], rtol=1e-6, atol=1e-9)
        assert heads.validation_mse[i] == pytest.approx(mse[best], rel=1e-6)
    assert heads.alphas[0] < heads.alphas[1]  # the choice really is per objective
    np.testing.assert_allclose(heads.raw(x), x @ heads.coef.T)  # no intercept anywhere


def test_ridge_heads_refuse_what_they_cannot_fit():
    _, x, labels = _synthetic(n=20)
    with pytest.raises(ValueError, match="rm.ridge_alphas"):
        fit_ridge_heads(x, labels, ["a", "b", "c"], [], validation_fraction=0.2)
    labels[:, 1] = np.nan
    labels[0, 1] = 1.0
    with pytest.raises(ValueError, match="'b' has .* labelled training rows"):
        fit_ridge_heads(x, labels, ["a", "b", "c"], [1.0], validation_fraction=0.2)


def _reference_penalty(rewards: np.ndarray, i: int, verbosity: int, threshold: float) -> float:
    """Stated directly: the smallest grid penalty bringing Spearman under the threshold, else 1."""
    for penalty in PENALTIES:
        if spearmanr(rewards[:, i] - penalty * rewards[:, verbosity], rewards[:, verbosity])[0] <= threshold:
            return penalty
    return 1.0


def _verbosity_rewards(seed: int = 3, n: int = 400) -> np.ndarray:
    rng = np.random.default_rng(seed)
    verbosity = rng.normal(size=n)
    leaks = [0.0, 0.3, 0.62, 3.0, -0.5]  # 3.0 is past the grid's reach; −0.5 starts below the threshold
    columns = [leak * verbosity + rng.normal(size=n) for leak in leaks]
    return np.stack(columns[:2] + [verbosity] + columns[2:], axis=1)  # verbosity at index 2


@pytest.mark.parametrize("threshold", [0.03, 0.1, -0.2])
def test_corr_threshold_penalties_match_the_reference_rule(threshold):
    rewards = _verbosity_rewards()
    penalties, reached = corr_threshold_penalties(rewards, verbosity=2, threshold=threshold)
    expected = [1.0 if i == 2 else _reference_penalty(rewards, i, 2, threshold) for i in range(rewards.shape[1])]
    np.testing.assert_array_equal(penalties, expected)
    assert penalties[4] == 1.0 and penalties[2] == 1.0  # unreachable keeps 1; verbosity itself is zeroed
    for i in range(rewards.shape[1]):
        if i != 2 and penalties[i] < 1:
            assert reached[i] == pytest.approx(spearmanr(rewards[:, i] - penalties[i] * rewards[:, 2],
                                                         rewards[:, 2])[0])
            assert reached[i] <= threshold


def test_decorrelation_rules_on_heads():
    rewards = _verbosity_rewards()
    names = ["helpfulness", "correctness", "verbosity", "coherence", "complexity", "safety"]
    heads = ObjectiveHeads(names, np.eye(6), [1.0] * 6, [0.0] * 6)  # raw rewards = the embeddings
    decorrelate_verbosity(heads, rewards, "verbosity", "corr_threshold", 0.03)
    adjusted = heads.adjusted(heads.raw(rewards))
    np.testing.assert_allclose(adjusted, rewards - rewards[:, [2]] * heads.penalties[None, :])
    np.testing.assert_array_equal(adjusted[:, 2], 0.0)  # r'_v = 0, as the reference's transform matrix
    for i in (0, 1, 3, 5):
        assert spearmanr(adjusted[:, i], rewards[:, 2])[0] <= 0.03

    decorrelate_verbosity(heads, rewards, "verbosity", "covariance", 0.03)
    adjusted = heads.adjusted(heads.raw(rewards))
    np.testing.assert_allclose(heads.penalties, covariance_penalties(rewards, 2))
    for i in (0, 1, 3, 4, 5):
        assert abs(np.corrcoef(adjusted[:, i], rewards[:, 2])[0, 1]) < 1e-9
    with pytest.raises(ValueError, match="rm.decorrelate"):
        decorrelate_verbosity(heads, rewards, "length", "covariance", 0.03)


def _independent_gate(network: GatingNetwork, x: np.ndarray, temperature: float) -> np.ndarray:
    """The reference forward from the raw weights: ReLU hidden layers, softmax(z / T) · logit_scale."""
    state = {k: v.double().numpy() for k, v in network.state_dict().items()}
    n_linear = len(network.layers)
    for i in range(n_linear):
        x = x @ state[f"layers.{i}.weight"].T + state[f"layers.{i}.bias"]
        if i < n_linear - 1:
            x = np.maximum(x, 0)
    z = x / temperature
    weights = np.exp(z - z.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True) * state["logit_scale"][0]


def test_gating_network_is_the_references():
    assert GatingArchitecture() == GatingArchitecture(n_hidden=3, hidden_dim=1024, temperature=10.0, dropout=0.2,
                                                      logit_scale=1.0)
    options = MultiObjectiveOptions()  # the config's defaults are the reference's
    assert (options.gating_n_hidden, options.gating_hidden_dim, options.gating_temperature, options.gating_dropout,
            options.gating_logit_scale) == (3, 1024, 10.0, 0.2, 1.0)
    assert (options.gating_steps, options.gating_batch_size, options.gating_learning_rate,
            options.gating_weight_decay, options.corr_threshold) == (2000, 1024, 1e-3, 0.0, 0.03)
    assert options.ridge_alphas == ALPHAS and options.ridge_validation_fraction == 0.2

    torch.manual_seed(0)
    architecture = GatingArchitecture(n_hidden=2, hidden_dim=16, temperature=5.0, dropout=0.3, logit_scale=2.0)
    network = GatingNetwork(8, 4, architecture).eval()
    assert [(layer.in_features, layer.out_features) for layer in network.layers] == [(8, 16), (16, 16), (16, 4)]
    x = np.random.default_rng(0).normal(size=(32, 8)) * 10
    out = network(torch.as_tensor(x, dtype=torch.float32)).detach().numpy()
    np.testing.assert_allclose(out, _independent_gate(network, x, 5.0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.sum(axis=1), 2.0, rtol=1e-6)  # weights sum to the logit scale

    hotter = GatingNetwork(8, 4, GatingArchitecture(2, 16, temperature=50.0, dropout=0.3, logit_scale=2.0)).eval()
    hotter.load_state_dict(network.state_dict())
    entropy = lambda w: -(w * np.log(w)).sum(axis=1).mean()  # noqa: E731
    x_t = torch.as_tensor(x, dtype=torch.float32)
    assert entropy(hotter.mixing(x_t).detach().numpy()) > entropy(network.mixing(x_t).detach().numpy())

    network.train()  # dropout only while training
    assert not torch.equal(network(x_t), network(x_t))
    network.eval()
    assert torch.equal(network(x_t), network(x_t))


def test_recovers_mixing_weights():
    rng, embeddings, labels = _synthetic()
    true_mix = np.array([0.6, 0.3, 0.1])
    heads = fit_ridge_heads(embeddings, labels, ["a", "b", "c"], [1e-3], validation_fraction=0.2)
    m = 3000
    i, j = rng.integers(0, len(embeddings), m), rng.integers(0, len(embeddings), m)
    score = labels @ true_mix
    first_wins = rng.random(m) < 1 / (1 + np.exp(-3 * (score[i] - score[j])))  # BT-sampled preferences, β = 3
    chosen, rejected = np.where(first_wins, i, j), np.where(first_wins, j, i)
    prompts = rng.normal(size=(m, 8))
    architecture = GatingArchitecture(n_hidden=1, hidden_dim=32, temperature=1.0, dropout=0.0)
    losses = fit_gating(heads, prompts, embeddings[chosen], embeddings[rejected], architecture, steps=400,
                        batch_size=256, learning_rate=0.02)
    assert np.mean(losses[-20:]) < np.mean(losses[:20])
    np.testing.assert_allclose(heads.weights(prompts).mean(axis=0), true_mix, atol=0.06)
    assert heads.gating is not None and 2.0 < float(heads.gating.logit_scale.detach()[0]) < 4.0  # β is the logit scale


def test_save_load_keeps_the_reward(tmp_path):
    rng, embeddings, labels = _synthetic()
    labels[:, 0] += 0.5 * labels[:, 2]  # helpfulness leaks verbosity (within the penalty grid's reach)
    names = ["helpfulness", "correctness", "verbosity"]
    heads = fit_ridge_heads(embeddings, labels, names, [0.1, 1.0, 10.0], validation_fraction=0.25, seed=3)
    decorrelate_verbosity(heads, embeddings, "verbosity", "corr_threshold", 0.03)
    assert 0 < heads.penalties[0] < 1
    prompts = rng.normal(size=(50, 8))
    architecture = GatingArchitecture(n_hidden=2, hidden_dim=8, temperature=3.0, dropout=0.1, logit_scale=1.5)
    fit_gating(heads, prompts, embeddings[:50], embeddings[50:100], architecture, steps=5, batch_size=16)
    heads.save(tmp_path)
    loaded = ObjectiveHeads.load(tmp_path)
    assert loaded.alphas == heads.alphas and loaded.gating.architecture == architecture
    np.testing.assert_allclose(loaded.reward(embeddings[:50], prompts), heads.reward(embeddings[:50], prompts),
                               rtol=1e-5, atol=1e-6)

"""Multi-objective head (ArmoRM maths) on synthetic embeddings: known weights come back."""

import numpy as np

from trainers.armo import ObjectiveHeads, fit_gating, fit_ridge_heads


def _synthetic(n: int = 600, d: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(3, d))
    embeddings = rng.normal(size=(n, d))
    labels = embeddings @ weights.T + 0.05 * rng.normal(size=(n, 3))
    return rng, embeddings, labels


def test_recovers_mixing_weights():
    rng, embeddings, labels = _synthetic()
    true_mix = np.array([0.6, 0.3, 0.1])
    heads = fit_ridge_heads(embeddings, labels, ["a", "b", "c"], alpha=1.0, decorrelate=None)
    m = 3000
    i, j = rng.integers(0, len(embeddings), m), rng.integers(0, len(embeddings), m)
    score = labels @ true_mix
    first_wins = rng.random(m) < 1 / (1 + np.exp(-3 * (score[i] - score[j])))  # BT-sampled preferences
    chosen, rejected = np.where(first_wins, i, j), np.where(first_wins, j, i)
    prompts = rng.normal(size=(m, 8))
    losses = fit_gating(heads, prompts, embeddings[chosen], embeddings[rejected], hidden=32, epochs=200)
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(heads.weights(prompts).mean(axis=0), true_mix, atol=0.05)


def test_ridge_heads_fit_with_missing_labels():
    _, embeddings, labels = _synthetic()
    labels[::3, 1] = np.nan
    heads = fit_ridge_heads(embeddings, labels, ["a", "b", "c"], alpha=0.1, decorrelate=None)
    rows = ~np.isnan(labels[:, 1])
    assert np.abs(heads.raw(embeddings)[rows] - labels[rows]).max() < 0.5


def test_verbosity_decorrelation_and_save_load(tmp_path):
    rng, embeddings, labels = _synthetic()
    labels[:, 0] += 2 * labels[:, 2]  # helpfulness leaks verbosity
    names = ["helpfulness", "correctness", "verbosity"]
    heads = fit_ridge_heads(embeddings, labels, names, alpha=1.0, decorrelate="verbosity")
    assert heads.mixed == ["helpfulness", "correctness"]
    raw = heads.raw(embeddings)
    adjusted = heads.adjusted(raw)
    for column in range(2):
        assert abs(np.corrcoef(adjusted[:, column], raw[:, 2])[0, 1]) < 1e-6
    prompts = rng.normal(size=(50, 8))
    fit_gating(heads, prompts, embeddings[:50], embeddings[50:100], hidden=8, epochs=5)
    heads.save(tmp_path)
    loaded = ObjectiveHeads.load(tmp_path)
    np.testing.assert_allclose(loaded.reward(embeddings[:50], prompts), heads.reward(embeddings[:50], prompts),
                               rtol=1e-5)

"""The MLP ensemble as a BoTorch model and the acquisition functions computed through BoTorch."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from botorch.posteriors.ensemble import EnsemblePosterior

from srnas.search.predictor import MLPEnsemble, acquisition, select_top


def data(n=40, d=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 2, size=(n, d)).astype(np.float32)
    y = 30.0 + X[:, :4].sum(1) * 0.5 - X[:, 4:6].sum(1) * 0.3
    return X, y


def test_ensemble_posterior_is_botorch_and_fits():
    X, y = data()
    m = MLPEnsemble(X.shape[1], members=4, hidden=32, seed=1).fit(X[:30], y[:30], epochs=200)
    post = m.posterior(torch.as_tensor(X[30:], dtype=torch.float64))
    assert isinstance(post, EnsemblePosterior) and post.values.shape == (4, 10, 1)
    mu, sd = m.predict(X[30:])
    assert mu.shape == sd.shape == (10,) and (sd >= 0).all()
    assert np.corrcoef(mu, y[30:])[0, 1] > 0.8  # learns a simple additive target
    assert abs(mu.mean() - y.mean()) < 1.0      # targets are de-standardised


def test_acquisitions_rank_by_mean_and_uncertainty(tmp_path):
    X, y = data()
    m = MLPEnsemble(X.shape[1], members=5, hidden=32, seed=2).fit(X, y, epochs=150)
    mu, sd = m.predict(X)
    ucb = acquisition(m, X, "ucb", y.max(), beta=4.0)
    assert np.allclose(ucb, mu + 2.0 * sd, atol=1e-4)  # botorch UCB = mean + sqrt(beta) * std
    ei = acquisition(m, X, "ei", y.max())
    assert ei.shape == (len(X),) and np.isfinite(ei).all()
    ts1 = acquisition(m, X, "ts", y.max(), seed=3)
    ts2 = acquisition(m, X, "ts", y.max(), seed=3)
    assert np.array_equal(ts1, ts2)  # seeded draw of one member
    values = m(torch.as_tensor(X, dtype=torch.float64)).detach().numpy()[:, :, 0]
    assert any(np.allclose(ts1, v, atol=1e-5) for v in values)
    assert select_top(np.array([1.0, 3.0, 2.0]), 2) == [1, 2]
    m.save(tmp_path / "p.pt")
    assert np.allclose(MLPEnsemble.load(tmp_path / "p.pt").predict(X)[0], mu, atol=1e-5)
    with pytest.raises(ValueError):
        acquisition(m, X, "nope", 0.0)

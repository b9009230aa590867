"""Ensemble of small MLPs (encoding -> PSNR) as a BoTorch model, and acquisition through BoTorch."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from botorch.acquisition.analytic import LogExpectedImprovement, UpperConfidenceBound
from botorch.models.ensemble import EnsembleModel
from torch import nn

from srnas.supernet import checkpoint


def _mlp(d: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))


class MLPEnsemble(EnsembleModel):
    """M MLPs, each fit on a bootstrap resample with its own seed; outputs are in PSNR units.

    ``forward`` returns ``batch x M x n x 1`` (what botorch's EnsembleModel expects), so
    ``posterior`` is a botorch ``EnsemblePosterior`` whose mean / variance over members
    feed the analytic acquisition functions.
    """

    def __init__(self, dim: int, members: int = 5, hidden: int = 48, seed: int = 0):
        super().__init__()
        self._num_outputs = 1
        self.dim, self.hidden, self.seed = dim, hidden, seed
        gens = []
        for m in range(members):
            torch.manual_seed(seed * 1000 + m)
            gens.append(_mlp(dim, hidden))
        self.nets = nn.ModuleList(gens)
        self.register_buffer("y_mean", torch.zeros(()))
        self.register_buffer("y_std", torch.ones(()))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        dtype = X.dtype
        X = X.to(self.nets[0][0].weight.dtype)  # acquisition functions cast the model to X's dtype
        outs = torch.stack([net(X) for net in self.nets], dim=-3)  # batch x M x n x 1
        return (outs * self.y_std + self.y_mean).to(dtype)

    def fit(self, X: np.ndarray, y: np.ndarray, epochs: int = 300, lr: float = 3e-3, wd: float = 1e-4) -> "MLPEnsemble":
        """Fit every member on a bootstrap resample of (X, y); targets are standardised."""
        self.float()
        X_t = torch.as_tensor(np.asarray(X, dtype=np.float32))
        y = np.asarray(y, dtype=np.float64)
        mu, sd = float(y.mean()), float(y.std()) if len(y) > 1 and y.std() > 1e-8 else 1.0
        self.y_mean.fill_(mu)
        self.y_std.fill_(sd)
        y_t = torch.as_tensor(((y - mu) / sd).astype(np.float32))[:, None]
        n = len(y)
        for m, net in enumerate(self.nets):
            g = np.random.default_rng([self.seed, m])
            idx = torch.as_tensor(g.integers(n, size=n) if n > 2 else np.arange(n))
            torch.manual_seed(self.seed * 1000 + m)
            opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=wd)
            net.train()
            for _ in range(epochs):
                loss = nn.functional.mse_loss(net(X_t[idx]), y_t[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            net.eval()
        return self

    @torch.no_grad()
    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation (PSNR dB) per row of X."""
        post = self.posterior(torch.as_tensor(np.asarray(X, dtype=np.float64)))
        return post.mean.squeeze(-1).numpy(), post.variance.clamp_min(0).sqrt().squeeze(-1).numpy()

    def save(self, path: str | Path) -> None:
        """Atomic checkpoint with the constructor arguments."""
        checkpoint.atomic_save({"dim": self.dim, "members": len(self.nets), "hidden": self.hidden,
                                "seed": self.seed, "state": self.state_dict()}, path)

    @staticmethod
    def load(path: str | Path) -> "MLPEnsemble":
        """Inverse of save."""
        blob = checkpoint.load(path)
        m = MLPEnsemble(blob["dim"], blob["members"], blob["hidden"], blob["seed"])
        m.load_state_dict(blob["state"])
        return m.eval()


@torch.no_grad()
def acquisition(model: MLPEnsemble, X: np.ndarray, kind: str, best_f: float, beta: float = 2.0,
                seed: int = 0) -> np.ndarray:
    """Acquisition value of every row of X, through botorch: 'ucb', 'ei' (log EI) or 'ts' (Thompson)."""
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float64))
    if kind == "ucb":
        return UpperConfidenceBound(model, beta=beta)(Xt[:, None, :]).numpy()
    if kind == "ei":
        return LogExpectedImprovement(model, best_f=best_f)(Xt[:, None, :]).numpy()
    if kind == "ts":
        # one joint draw over the whole pool = one ensemble member's function (EnsemblePosterior.rsample)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return model.posterior(Xt).rsample(torch.Size([1]))[0, :, 0].numpy()
    raise ValueError(f"unknown acquisition {kind!r}; use ucb, ei or ts")


def select_top(values: np.ndarray, b: int) -> list[int]:
    """Indices of the ``b`` largest acquisition values (stable order on ties)."""
    return [int(i) for i in np.argsort(-np.asarray(values), kind="stable")[:b]]

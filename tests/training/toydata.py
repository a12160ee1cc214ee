"""Helpers for the training tests: a two-blob classification problem and its MLP."""

from __future__ import annotations

import torch


def make_blobs(n: int = 256, seed: int = 0):
    """Two Gaussian blobs in 2-D, labels 0 and 1, drawn from a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    centers = torch.tensor([[-2.0, -2.0], [2.0, 2.0]])
    x = centers[y] + torch.randn(n, 2, generator=g)
    return x, y


def make_net(seed: int = 0):
    """A small MLP with weights fixed by *seed*, independent of the global RNG."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return torch.nn.Sequential(
            torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)
        )


def loader(x, y, batch_size: int = 32, shuffle: bool = False):
    from torch.utils.data import DataLoader, TensorDataset

    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle)


def weights(model):
    """A detached copy of every parameter and buffer."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

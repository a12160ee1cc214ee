"""A three-blob classification problem and tiny MLPs for the evaluation tests."""

from __future__ import annotations

import torch

CENTRES = torch.tensor([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0]])


def blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three Gaussian blobs in 4-d that overlap a little (accuracy about 0.85 at best)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    return CENTRES[y] + torch.randn(n, 4, generator=g), y


def mlp(steps: int, seed: int = 0) -> torch.nn.Module:
    """A tiny MLP trained with plain torch for *steps* full-batch Adam steps."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    X, y = blobs(600, 100 + seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(X), y).backward()
        opt.step()
    return model.eval()

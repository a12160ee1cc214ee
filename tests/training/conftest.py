"""Fixtures for the training tests."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from training.toydata import loader, make_blobs  # noqa: E402


@pytest.fixture
def data():
    """(train_loader, val_loader) over two blobs, unshuffled."""
    x, y = make_blobs(256, seed=0)
    vx, vy = make_blobs(128, seed=1)
    return loader(x, y), loader(vx, vy, batch_size=64)

"""Training in the notebook: :func:`train` runs a PyTorch loop and returns a :class:`Run`.

Importing this package does not import torch or pandas; they are imported by
the functions that use them (``tests/training/test_exports.py`` guards it).
"""

from __future__ import annotations

from mlnb.training.devices import Precision, resolve_device, resolve_precision
from mlnb.training.history import Run
from mlnb.training.loop import TrainingWarning, train
from mlnb.training.state import seed_everything

__all__ = ["Precision", "Run", "TrainingWarning", "resolve_device", "resolve_precision",
           "seed_everything", "train"]

"""What a checkpoint holds besides the weights: random states, the loop's place, a model signature.

A resumed run reaches the same weights as one that was never stopped only if
everything random continues from where it was: torch's CPU and CUDA
generators, Python's ``random`` and NumPy's global generator (user transforms
draw from them).  :func:`capture_rng` and :func:`restore_rng` save and put back
all four.  :func:`signature` tells whether a checkpoint can belong to a model:
the names, shapes and dtypes of its weights plus the optimizer's class.
"""

from __future__ import annotations

import hashlib
import random
import sys
from typing import Any

__all__ = ["capture_rng", "restore_rng", "seed_everything", "signature"]


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and every GPU), Python's ``random`` and NumPy's global generator.

    NumPy is seeded only when something imported it already (it is not imported for this).
    """
    import torch

    random.seed(seed)
    torch.manual_seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed % 2**32)


def capture_rng() -> dict[str, Any]:
    """The state of every global random generator a training step may draw from."""
    import torch

    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "python": random.getstate(),
        "numpy": None,
    }
    numpy = sys.modules.get("numpy")  # only if something imported it: it may draw from it
    if numpy is not None:
        state["numpy"] = numpy.random.get_state()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put back the generators saved by :func:`capture_rng`."""
    import torch

    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    random.setstate(state["python"])
    if state.get("numpy") is not None:
        import numpy

        numpy.random.set_state(state["numpy"])


def signature(model: Any, optimizer: Any) -> str:
    """A short hash of the weights' names, shapes and dtypes and the optimizer's class.

    Two runs with the same signature can exchange checkpoints; a changed layer
    or a different optimizer makes a new signature, so ``resume=True`` never
    loads a checkpoint into a model it does not fit.
    """
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
    h.update(f"optimizer:{type(optimizer).__qualname__}".encode())
    return h.hexdigest()[:16]

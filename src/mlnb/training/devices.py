"""Choose the device and the numeric precision a training run uses.

Each choice is split in two: a pure decision over plain facts
(:func:`choose_device`, :func:`choose_precision`) and a thin wrapper that asks
torch for those facts (:func:`resolve_device`, :func:`resolve_precision`).  The
GPU branches of the decisions are tested on CPU-only machines by passing fake
facts (``tests/training/test_devices.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlnb.errors import InvalidArgument

if TYPE_CHECKING:
    import torch

__all__ = ["Precision", "choose_device", "choose_precision", "resolve_device",
           "resolve_precision"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DEVICE_TYPES = ("cpu", "cuda", "mps")


@dataclass(frozen=True)
class Precision:
    """How a run computes: the autocast dtype, if any, and whether a GradScaler is needed.

    Attributes
    ----------
    name:
        ``"fp32"``, ``"bf16"`` or ``"fp16"``.
    dtype:
        ``"bfloat16"`` or ``"float16"`` for autocast, ``None`` for plain fp32.
    autocast:
        Whether the forward pass and the loss run under ``torch.autocast``.
    grad_scaler:
        Whether the loss is scaled by a ``torch.amp.GradScaler`` (fp16 only: its
        small exponent range underflows gradients without one).
    """

    name: str
    dtype: str | None
    autocast: bool
    grad_scaler: bool

    @property
    def torch_dtype(self) -> torch.dtype | None:
        """The autocast dtype as a ``torch.dtype`` (``None`` for fp32)."""
        import torch

        return getattr(torch, self.dtype) if self.dtype else None

    def __str__(self) -> str:
        return self.name


FP32 = Precision("fp32", None, autocast=False, grad_scaler=False)
BF16 = Precision("bf16", "bfloat16", autocast=True, grad_scaler=False)
FP16 = Precision("fp16", "float16", autocast=True, grad_scaler=True)


def choose_device(requested: str, *, cuda_count: int, mps: bool) -> str:
    """Pick a device string from what was *requested* and what the machine has.

    ``"auto"`` means CUDA when there is a GPU, then MPS, then CPU.  Pure: the
    machine's facts are arguments.

    Raises
    ------
    InvalidArgument
        An unknown device, or one this machine does not have; the message lists
        the devices that are available.
    """
    available = ["cpu"]
    if cuda_count:
        available.insert(0, "cuda" if cuda_count == 1 else f"cuda:0..{cuda_count - 1}")
    if mps:
        available.insert(-1, "mps")
    have = ", ".join(available)
    text = requested.strip().lower()
    if text == "auto":
        return "cuda" if cuda_count else "mps" if mps else "cpu"
    kind, sep, index = text.partition(":")
    if kind not in _DEVICE_TYPES or (sep and not index.isdigit()):
        raise InvalidArgument(
            f"unknown device {requested!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps' "
            f"(available here: {have})"
        )
    if kind == "cpu" and sep:
        raise InvalidArgument(f"device {requested!r}: write 'cpu' without an index")
    if kind == "cuda" and (not cuda_count or (sep and int(index) >= cuda_count)):
        found = f"{cuda_count} CUDA device(s)" if cuda_count else "no CUDA device"
        raise InvalidArgument(
            f"device {requested!r} is not available: this machine has {found} "
            f"(available here: {have}); pass device='auto' to use what is there"
        )
    if kind == "mps" and (not mps or sep):
        raise InvalidArgument(
            f"device {requested!r} is not available (available here: {have}); "
            "pass device='auto' to use what is there"
        )
    return text


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Return the ``torch.device`` to train on.

    Parameters
    ----------
    device:
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``,
        ``"mps"``, or a ``torch.device``.

    Raises
    ------
    InvalidArgument
        The device is unknown or this machine does not have it.
    """
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise InvalidArgument(
            f"device must be a string or a torch.device, not {type(device).__name__}"
        )
    mps = getattr(torch.backends, "mps", None)
    chosen = choose_device(
        device,
        cuda_count=torch.cuda.device_count() if torch.cuda.is_available() else 0,
        mps=bool(mps is not None and mps.is_available()),
    )
    return torch.device(chosen)


def choose_precision(requested: str, device_type: str, *, bf16_supported: bool) -> Precision:
    """Pick the precision for *requested* on a device of *device_type*.

    ``"auto"`` is bf16 autocast on a CUDA GPU that supports bf16, fp16 autocast
    with a GradScaler on an older CUDA GPU, and fp32 elsewhere (CPU, and MPS,
    where mixed precision is opt-in).  Pure: the device's facts are arguments.

    Raises
    ------
    InvalidArgument
        An unknown precision, fp16 on CPU, or bf16 on a device without it.
    """
    if not isinstance(requested, str) or requested.lower() not in PRECISIONS:
        raise InvalidArgument(
            f"unknown precision {requested!r}: use one of {', '.join(PRECISIONS)}"
        )
    requested = requested.lower()
    if requested == "auto":
        if device_type != "cuda":
            return FP32
        return BF16 if bf16_supported else FP16
    if requested == "fp32":
        return FP32
    if requested == "fp16":
        if device_type == "cpu":
            raise InvalidArgument(
                "precision 'fp16' is not supported on CPU (autocast and GradScaler need a GPU); "
                "use precision='fp32', or 'bf16' for mixed precision on CPU"
            )
        return FP16
    if not bf16_supported:
        raise InvalidArgument(
            f"precision 'bf16' is not supported on this {device_type} device; "
            "use precision='fp16' (with a GradScaler) or 'auto'"
        )
    return BF16


def resolve_precision(precision: str = "auto", device: Any = "cpu") -> Precision:
    """Return the :class:`Precision` to train with on *device*.

    *device* is anything :func:`resolve_device` accepts.  Whether a CUDA GPU
    supports bf16 is asked from torch (natively, not emulated); CPU autocast always
    supports bf16, and MPS is treated as not supporting it.

    Raises
    ------
    InvalidArgument
        See :func:`choose_precision` and :func:`resolve_device`.
    """
    import torch

    dev = resolve_device(device)
    if dev.type == "cuda":
        with torch.cuda.device(dev):
            bf16 = bool(torch.cuda.is_bf16_supported(including_emulation=False))
    else:
        bf16 = dev.type == "cpu"
    return choose_precision(precision, dev.type, bf16_supported=bf16)

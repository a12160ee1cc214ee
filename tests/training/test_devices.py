"""Device and precision choice: the pure decision tables, GPU rows included, and the wrappers."""

from __future__ import annotations

import warnings

import pytest

from mlnb.errors import InvalidArgument
from mlnb.training.devices import choose_device, choose_precision

torch = pytest.importorskip("torch")


@pytest.mark.parametrize(
    ("requested", "cuda_count", "mps", "expected"),
    [
        ("auto", 2, True, "cuda"),
        ("auto", 0, True, "mps"),
        ("auto", 0, False, "cpu"),
        ("cpu", 1, True, "cpu"),
        ("cuda", 1, False, "cuda"),
        ("cuda:1", 2, False, "cuda:1"),
        ("MPS", 0, True, "mps"),
    ],
)
def test_choose_device(requested, cuda_count, mps, expected):
    assert choose_device(requested, cuda_count=cuda_count, mps=mps) == expected


@pytest.mark.parametrize(
    ("requested", "cuda_count", "mps", "message"),
    [
        ("cuda", 0, False, r"'cuda' is not available: this machine has no CUDA device "
                           r"\(available here: cpu\)"),
        ("cuda:1", 1, False, r"has 1 CUDA device\(s\) \(available here: cuda, cpu\)"),
        ("mps", 2, False, r"'mps' is not available \(available here: cuda:0\.\.1, cpu\)"),
        ("tpu", 0, False, r"unknown device 'tpu'"),
        ("cuda:x", 1, False, r"unknown device 'cuda:x'"),
        ("cpu:0", 0, False, r"without an index"),
    ],
)
def test_choose_device_refuses_what_is_not_there(requested, cuda_count, mps, message):
    with pytest.raises(InvalidArgument, match=message):
        choose_device(requested, cuda_count=cuda_count, mps=mps)


@pytest.mark.parametrize(
    ("requested", "device_type", "bf16", "name", "autocast", "scaler"),
    [
        ("auto", "cuda", True, "bf16", True, False),
        ("auto", "cuda", False, "fp16", True, True),
        ("auto", "cpu", True, "fp32", False, False),
        ("auto", "mps", False, "fp32", False, False),
        ("fp32", "cuda", True, "fp32", False, False),
        ("fp16", "cuda", True, "fp16", True, True),
        ("bf16", "cuda", True, "bf16", True, False),
        ("bf16", "cpu", True, "bf16", True, False),
        ("FP16", "mps", False, "fp16", True, True),
    ],
)
def test_precision_table(requested, device_type, bf16, name, autocast, scaler):
    p = choose_precision(requested, device_type, bf16_supported=bf16)
    assert (p.name, p.autocast, p.grad_scaler) == (name, autocast, scaler)
    expected_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
    assert p.torch_dtype == expected_dtype


def test_fp16_on_cpu_is_refused_with_the_way_out():
    with pytest.raises(InvalidArgument, match=r"'fp16' is not supported on CPU.*'fp32'.*'bf16'"):
        choose_precision("fp16", "cpu", bf16_supported=True)


def test_bf16_on_an_old_gpu_is_refused_and_points_to_fp16():
    with pytest.raises(InvalidArgument, match=r"'bf16' is not supported on this cuda.*'fp16'"):
        choose_precision("bf16", "cuda", bf16_supported=False)


def test_unknown_precision():
    with pytest.raises(InvalidArgument, match=r"unknown precision 'int8'"):
        choose_precision("int8", "cpu", bf16_supported=True)


def test_wrappers_on_this_machine():
    from mlnb.training import resolve_device, resolve_precision

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto").type in ("cpu", "mps")
        with pytest.raises(InvalidArgument, match="no CUDA device"):
            resolve_device("cuda")
    assert resolve_precision("auto", "cpu").name == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")).name == "bf16"
    with pytest.raises(InvalidArgument, match="fp16"):
        resolve_precision("fp16", "cpu")


def test_a_cuda_run_over_a_pageable_dataloader_hints_pin_memory():
    from types import SimpleNamespace

    from torch.utils.data import DataLoader, TensorDataset

    from mlnb.training import TrainingWarning
    from mlnb.training.loop import _hint_pinned_memory

    data = TensorDataset(torch.zeros(4, 2), torch.zeros(4))
    cuda = SimpleNamespace(type="cuda")
    with pytest.warns(TrainingWarning, match=r"DataLoader\(\.\.\., pin_memory=True\)"):
        _hint_pinned_memory(DataLoader(data), cuda)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _hint_pinned_memory(DataLoader(data, pin_memory=True), cuda)
        _hint_pinned_memory(DataLoader(data), SimpleNamespace(type="cpu"))

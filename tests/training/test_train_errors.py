"""Bad arguments raise InvalidArgument, with the way out, before any training step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from training.toydata import make_blobs, make_net, same_weights, weights

from mlnb.errors import InvalidArgument, InvalidName
from mlnb.training import train


class Untouchable:
    """A loader that fails the test if anything iterates it."""

    def __iter__(self):
        raise AssertionError("a batch was drawn before the arguments were checked")


CASES = [
    ({"epochs": 0}, r"epochs must be an int >= 1, got 0"),
    ({"epochs": 2.5}, r"epochs must be an int >= 1, got 2.5"),
    ({"grad_accum": 0}, r"grad_accum must be an int >= 1, got 0"),
    ({"log_every": 0}, r"log_every must be an int >= 1"),
    ({"early_stop": 0}, r"early_stop must be an int >= 1, got 0 \(or None"),
    ({"clip_grad": -1.0}, r"clip_grad must be a positive number"),
    ({"seed": -1}, r"seed must be a non-negative int"),
    ({"metrics": ["acurracy"]}, r"unknown metric 'acurracy'; did you mean 'accuracy'\?.*"
                                r"metrics=\{'acurracy': fn\}"),
    ({"metrics": {"f1": 3}}, r"unknown metric 'f1'"),
    ({"metrics": ["loss"]}, r"invalid metric name 'loss'"),
    ({"monitor": "val_f1"}, r"monitor 'val_f1' is not produced by this run.*"
                            r"train_loss, val_loss, val_accuracy"),
    ({"monitor": "val_loss", "val": False}, r"val_\* columns need a val_loader"),
    ({"metrics": ["accuracy"], "val": False}, r"no val_loader was given: "
                                              r"pass val_loader=\.\.\. or metrics=\(\)"),
    ({"mode": "up"}, r"mode must be 'min' or 'max'"),
    ({"precision": "fp16"}, r"'fp16' is not supported on CPU"),
    ({"device": "tpu"}, r"unknown device 'tpu'"),
    ({"optimizer": "adam"}, r"optimizer must be a torch.optim.Optimizer, not str"),
    ({"loss_fn": "ce"}, r"loss_fn must be callable"),
]


@pytest.mark.parametrize(("kwargs", "message"), CASES)
def test_bad_argument_fails_before_any_step(kwargs, message):
    model = make_net()
    before = weights(model)
    kwargs = dict(kwargs)
    val = Untouchable() if kwargs.pop("val", True) else None
    opt = kwargs.pop("optimizer", None) or torch.optim.SGD(model.parameters(), lr=0.1)
    kwargs.setdefault("loss_fn", F.cross_entropy)
    kwargs.setdefault("device", "cpu")
    with pytest.raises(InvalidArgument, match=message):
        train(model, Untouchable(), val_loader=val, optimizer=opt, progress=False, **kwargs)
    assert same_weights(before, weights(model))


def test_bad_register_name_fails_before_any_step():
    model = make_net()
    with pytest.raises(InvalidName):
        train(model, Untouchable(), loss_fn=F.cross_entropy, register="bad name!",
              optimizer=torch.optim.SGD(model.parameters(), lr=0.1), progress=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_names_what_is_available():
    model = make_net()
    with pytest.raises(InvalidArgument, match=r"no CUDA device \(available here: .*cpu\)"):
        train(model, Untouchable(), loss_fn=F.cross_entropy, device="cuda",
              optimizer=torch.optim.SGD(model.parameters(), lr=0.1), progress=False)


def test_a_loader_of_non_pairs_is_a_clear_error():
    x, _ = make_blobs(16)
    model = make_net()
    before = weights(model)
    with pytest.raises(InvalidArgument, match=r"train_loader must yield \(inputs, targets\) "
                                              r"pairs, got Tensor"):
        train(model, (b for b in [x]), loss_fn=F.cross_entropy, device="cpu", progress=False,
              optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert same_weights(before, weights(model))


def test_a_tensor_on_another_device_names_the_fix():
    """A loss weight left on another device (CPU vs CUDA in real life; meta here)."""
    x, y = make_blobs(16)
    model = make_net()
    weight = torch.ones(2, device="meta")
    with pytest.raises(InvalidArgument, match=r"the first batch of train_loader failed \("
                       r"inputs \(16, 2\) float32, targets \(16,\) int64\): .*device.*; the "
                       r"batch and the model are on cpu; move any other tensor"):
        train(model, (x, y), batch_size=16, device="cpu", progress=False,
              loss_fn=lambda out, t: F.cross_entropy(out, t, weight=weight),
              optimizer=torch.optim.SGD(model.parameters(), lr=0.1))


def test_the_cuda_device_message_gets_the_same_hint():
    from mlnb.training.steps import _first_batch_message

    err = RuntimeError("Expected all tensors to be on the same device, but found at least "
                       "two devices, cuda:0 and cpu!")
    text = _first_batch_message("val_loader", torch.zeros(4, 3), torch.zeros(4), err, "cuda:0")
    assert text.startswith("the first batch of val_loader failed (inputs (4, 3) float32, "
                           "targets (4,) float32): Expected all tensors")
    assert text.endswith("e.g. with .to('cuda:0')")


def test_a_batch_of_the_wrong_shape_shows_its_shapes():
    x, y = make_blobs(16)
    model = make_net()
    with pytest.raises(InvalidArgument, match=r"the first batch of train_loader failed \(inputs "
                       r"\(8, 3\) float32, targets \(8,\) int64\): mat1 and mat2 shapes cannot be "
                       r"multiplied .*check that the loader yields"):
        train(model, (torch.randn(16, 3), y), batch_size=8, device="cpu", progress=False,
              loss_fn=F.cross_entropy, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))

"""A run that raises tells its observers it failed, and its run record says so."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from training.toydata import loader, make_blobs, make_net

from mlnb.errors import InvalidArgument
from mlnb.training import train


class Recorder:
    def __init__(self):
        self.events = []

    def start(self, e):
        self.events.append("start")

    def end(self, e):
        self.events.append("end")

    def abort(self, status):
        self.events.append(f"abort:{status}")


def test_an_error_in_user_code_aborts_observers_and_marks_the_run_failed():
    from mlnb.training.runs import RunStore

    x, y = make_blobs(64)
    calls = {"n": 0}

    def buggy(out, target):
        calls["n"] += 1
        if calls["n"] == 5:
            raise ZeroDivisionError("a bug in the loss")
        return F.cross_entropy(out, target)

    rec = Recorder()
    model = make_net()
    with pytest.raises(ZeroDivisionError):
        train(model, loader(x, y, 16), loss_fn=buggy, optimizer=torch.optim.SGD(
            model.parameters(), lr=0.1), epochs=3, device="cpu", progress=rec, name="buggy")
    assert rec.events == ["start", "abort:failed"]
    [record] = RunStore.default().runs("buggy")
    assert record.status == "failed"


def test_the_text_bar_ends_with_the_failure():
    from mlnb.training.progress import TextProgress

    out = io.StringIO()
    x, y = make_blobs(64)
    model = make_net()

    def bad(out_, target):
        raise RuntimeError("boom")

    with pytest.raises(InvalidArgument, match="the first batch of train_loader failed"):
        train(model, loader(x, y, 16), loss_fn=bad, optimizer=torch.optim.SGD(
            model.parameters(), lr=0.1), device="cpu", progress=TextProgress(out))
    assert out.getvalue().strip().splitlines()[-1].startswith("failed")

"""grad_accum, clip_grad, early stopping and schedulers behave as documented."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from training.toydata import loader, make_blobs, make_net

from mlnb.training import train


def test_grad_accum_2_of_8_equals_one_step_per_16_samples():
    x, y = make_blobs(64, seed=5)
    model = make_net(1)
    run = train(model, loader(x, y, 8), loss_fn=F.cross_entropy,
                optimizer=torch.optim.SGD(model.parameters(), lr=0.5), epochs=2,
                grad_accum=2, device="cpu", progress=False)
    assert run.status == "finished"

    ref = make_net(1)
    opt = torch.optim.SGD(ref.parameters(), lr=0.5)
    for _ in range(2):
        for xb, yb in loader(x, y, 16):
            opt.zero_grad()
            F.cross_entropy(ref(xb), yb).backward()
            opt.step()
    for (name, a), b in zip(model.named_parameters(), ref.parameters()):
        assert torch.allclose(a, b, atol=1e-6), name
    # and it is not the same as stepping every batch of 8
    plain = make_net(1)
    train(plain, loader(x, y, 8), loss_fn=F.cross_entropy,
          optimizer=torch.optim.SGD(plain.parameters(), lr=0.5), epochs=2, device="cpu",
          progress=False)
    assert not torch.allclose(plain[0].weight, ref[0].weight, atol=1e-4)


class NormRecordingSGD(torch.optim.SGD):
    """SGD that records the total gradient norm it is asked to apply."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.norms = []

    def step(self, closure=None):
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        self.norms.append(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g) for g in grads])).item())
        return super().step(closure)


@pytest.mark.parametrize("clip", [None, 0.05])
def test_clip_grad_bounds_the_applied_gradient_norm(clip):
    x, y = make_blobs(128, seed=2)
    model = make_net(2)
    opt = NormRecordingSGD(model.parameters(), lr=0.1)
    train(model, loader(x, y, 16), loss_fn=F.cross_entropy, optimizer=opt, epochs=1,
          clip_grad=clip, device="cpu", progress=False)
    assert len(opt.norms) == 8
    if clip is None:
        assert max(opt.norms) > 0.5  # the problem has gradients worth clipping
    else:
        assert max(opt.norms) <= clip * (1 + 1e-4)


def scripted(values):
    """A user metric returning *values* one epoch after another."""
    it = iter(values)

    def metric(outputs, targets):
        return next(it)

    return metric


@pytest.mark.parametrize(
    ("values", "mode", "patience", "epochs_run", "best_epoch"),
    [
        # max: improves to epoch 3, then 2 epochs without -> stop after epoch 5
        ([0.1, 0.2, 0.5, 0.5, 0.4, 0.9, 0.9], "max", 2, 5, 3),
        # min: keeps improving: runs all 7
        ([7, 6, 5, 4, 3, 2, 1], "min", 1, 7, 7),
        # min: never better than epoch 1, patience 3 -> stop after epoch 4
        ([1, 2, 2, 3, 0, 0, 0], "min", 3, 4, 1),
    ],
)
def test_early_stop_on_a_scripted_monitor(data, values, mode, patience, epochs_run, best_epoch):
    model = make_net()
    run = train(model, *data[:1], val_loader=data[1], loss_fn=F.cross_entropy,
                optimizer=torch.optim.SGD(model.parameters(), lr=0.1), epochs=7,
                metrics={"score": scripted(values)}, monitor="val_score", mode=mode,
                early_stop=patience, device="cpu", progress=False)
    assert len(run.history) == epochs_run
    assert run.status == ("stopped_early" if epochs_run < 7 else "finished")
    assert run.best_epoch == best_epoch
    assert run.best_value == values[best_epoch - 1]
    assert run.history["val_score"].tolist() == values[:epochs_run]


@pytest.mark.parametrize(("metric", "mode", "best_epoch"),
                         [("mae", "min", 3), ("error_rate", "min", 3), ("auc", "max", 1)])
def test_the_default_mode_reads_the_metric_name(data, metric, mode, best_epoch):
    model = make_net()
    run = train(model, *data[:1], val_loader=data[1], loss_fn=F.cross_entropy,
                optimizer=torch.optim.SGD(model.parameters(), lr=0.1), epochs=3,
                metrics={metric: scripted([0.3, 0.2, 0.1])}, monitor=metric,
                device="cpu", progress=False)
    assert (run.mode, run.best_epoch) == (mode, best_epoch)


def test_scheduler_steps_once_per_epoch_and_lr_is_recorded(data):
    model = make_net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    run = train(model, *data[:1], loss_fn=F.cross_entropy, optimizer=opt, scheduler=sched,
                epochs=3, device="cpu", progress=False)
    assert run.history["lr"].tolist() == pytest.approx([0.1, 0.05, 0.025])


@pytest.mark.parametrize(
    ("scores", "lrs"),
    [([1, 2, 3], [0.1, 0.1, 0.1]),  # improving: never reduced
     ([1, 1, 1], [0.1, 0.1, 0.05])],  # plateau after epoch 2: reduced once before epoch 3
)
def test_reduce_on_plateau_gets_the_monitor(data, scores, lrs):
    model = make_net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", patience=0, factor=0.5)
    run = train(model, data[0], val_loader=data[1], loss_fn=F.cross_entropy, optimizer=opt,
                scheduler=sched, epochs=3, metrics={"score": scripted(scores)},
                monitor="score", device="cpu", progress=False)
    assert run.history["lr"].tolist() == pytest.approx(lrs)

"""``mlnb.train`` learns, records its history, is reproducible, and syncs rarely."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F
from training.toydata import loader, make_blobs, make_net, same_weights, weights

from mlnb.training import Run, train


def fit(model, train_loader, val_loader=None, **kw):
    kw.setdefault("progress", False)
    opt = kw.pop("optimizer", None) or torch.optim.SGD(model.parameters(), lr=0.1)
    return train(model, train_loader, val_loader=val_loader, loss_fn=F.cross_entropy,
                 optimizer=opt, device="cpu", **kw)


def test_learns_two_blobs_and_records_one_row_per_epoch(data):
    model = make_net()
    run = fit(model, *data, epochs=4, log_every=4)
    assert isinstance(run, Run)
    assert run.status == "finished"
    assert list(run.history.columns) == [
        "epoch", "train_loss", "val_loss", "val_accuracy", "lr", "epoch_time_s", "samples_per_s",
    ]
    assert run.history["epoch"].tolist() == [1, 2, 3, 4]
    assert run.history["val_accuracy"].iloc[-1] > 0.9
    val_loss = run.history["val_loss"]
    assert val_loss.iloc[-1] < val_loss.iloc[0]
    assert (run.history["samples_per_s"] > 0).all()
    assert run.history["lr"].tolist() == [0.1] * 4
    # monitor defaults to val_loss, minimised; the best epoch is where it is lowest
    assert (run.monitor, run.mode) == ("val_loss", "min")
    assert run.best_epoch == int(val_loss.idxmin()) + 1
    assert run.best_value == pytest.approx(val_loss.min())
    assert run.device == "cpu" and run.precision == "fp32" and run.version is None
    # accuracy in the history is what the trained model really scores
    vx, vy = make_blobs(128, seed=1)
    with torch.no_grad():
        acc = (model(vx).argmax(1) == vy).float().mean().item()
    assert run.history["val_accuracy"].iloc[-1] == pytest.approx(acc)


def test_steps_log_every_n_batches_and_epoch_ends(data):
    # 256 samples / 32 = 8 batches per epoch; log_every=3 -> steps 3, 6, 8 | 9, 12, 15, 16
    run = fit(make_net(), *data, epochs=2, log_every=3)
    assert run.steps["step"].tolist() == [3, 6, 8, 9, 12, 15, 16]
    assert run.steps["epoch"].tolist() == [1, 1, 1, 2, 2, 2, 2]
    # the epoch's train_loss is the sample-weighted mean of its logged windows
    first = run.steps[run.steps["epoch"] == 1]
    sizes = [96, 96, 64]
    expected = sum(s * w for s, w in zip(first["loss"], sizes)) / 256
    assert run.history["train_loss"].iloc[0] == pytest.approx(expected)


def test_train_loss_matches_a_hand_computed_mean():
    x, y = make_blobs(64, seed=3)
    model, ref = make_net(), make_net()
    run = fit(model, loader(x, y, 16), epochs=1, log_every=100,
              optimizer=torch.optim.SGD(model.parameters(), lr=0.0))
    with torch.no_grad():
        expected = F.cross_entropy(ref(x), y).item()
    assert run.history["train_loss"].iloc[0] == pytest.approx(expected, rel=1e-5)
    assert run.history.columns.tolist()[:2] == ["epoch", "train_loss"]
    assert "val_loss" not in run.history.columns
    assert run.monitor == "train_loss"


def test_no_host_sync_per_step(monkeypatch):
    x, y = make_blobs(512, seed=0)
    vx, vy = make_blobs(64, seed=1)
    calls = []
    real_item = torch.Tensor.item

    def counting_item(self):
        # DataLoader reads a CPU seed per iteration; count only mlnb's reads.
        if "mlnb" in sys._getframe(1).f_code.co_filename:
            calls.append(1)
        return real_item(self)

    monkeypatch.setattr(torch.Tensor, "item", counting_item)
    fit(make_net(), loader(x, y, 8), loader(vx, vy, 64), epochs=2, log_every=1000)
    # 64 batches per epoch; per epoch: one train-loss read, one val-loss, one accuracy
    assert len(calls) == 2 * 3


def test_same_seed_same_weights_and_history_other_seed_differs():
    x, y = make_blobs(256, seed=0)
    vx, vy = make_blobs(64, seed=1)

    def run_with(seed):
        model = make_net()
        # Dropout and shuffling both draw from the global generator that seed= sets.
        model.insert(2, torch.nn.Dropout(0.2))
        run = fit(model, loader(x, y, 32, shuffle=True), loader(vx, vy, 64), epochs=2,
                  seed=seed)
        return weights(model), run.history.drop(columns=["epoch_time_s", "samples_per_s"])

    w1, h1 = run_with(7)
    w2, h2 = run_with(7)
    w3, h3 = run_with(8)
    assert same_weights(w1, w2)
    assert h1.equals(h2)
    assert not same_weights(w1, w3)
    assert not h1.equals(h3)


def test_progress_outside_a_notebook_is_text_on_stderr(data, capsys):
    fit(make_net(), *data, epochs=1, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("finished") and "epoch 1/1" in last and "val_accuracy=" in last


def test_repr_reads_well(data):
    run = fit(make_net(), *data, epochs=2)
    text = repr(run)
    assert text.startswith("<Run finished, 2/2 epochs, best val_loss=")
    assert "cpu/fp32" in text
    assert "<table" in run._repr_html_()


def test_bf16_autocast_on_cpu_trains(data):
    run = fit(make_net(), *data, epochs=3, precision="bf16")
    assert run.precision == "bf16"
    assert run.history["val_accuracy"].iloc[-1] > 0.9


def test_user_metric_sees_all_validation_outputs(data):
    seen = []

    def n_outputs(outputs, targets):
        seen.append((tuple(outputs.shape), tuple(targets.shape)))
        return float(len(targets))

    run = fit(make_net(), *data, epochs=2, metrics={"n": n_outputs, "acc": "accuracy"},
              monitor="acc")
    assert seen == [((128, 2), (128,))] * 2
    assert run.history["val_n"].tolist() == [128.0, 128.0]
    assert (run.monitor, run.mode) == ("val_acc", "max")
    assert run.history["val_acc"].iloc[-1] > 0.9

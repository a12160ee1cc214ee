"""``register=`` stores the trained model with its metrics, hyper-parameters and tag."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from training.toydata import loader, make_blobs, make_net


def test_register_stores_the_trained_model(reg, data):
    from mlnb.training import train

    model = make_net()
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    run = train(model, data[0], val_loader=data[1], loss_fn=F.cross_entropy, optimizer=opt,
                epochs=3, grad_accum=2, clip_grad=1.0, seed=3, register="toy", registry=reg,
                device="cpu", progress=False)
    v = run.version
    assert (v.name, v.version) == ("toy", 1)
    assert reg.get("toy:1").ref == v.ref
    last = run.history.iloc[-1]
    assert dict(v.metrics) == pytest.approx({
        "train_loss": last["train_loss"], "val_loss": last["val_loss"],
        "val_accuracy": last["val_accuracy"], "best_val_loss": run.best_value,
    })
    assert dict(v.params) == {
        "epochs": 3, "epochs_run": 3, "lr": 0.01, "batch_size": 32, "grad_accum": 2,
        "clip_grad": 1.0, "seed": 3, "precision": "fp32", "device": "cpu",
        "optimizer": "AdamW", "scheduler": None, "monitor": "val_loss",
    }
    assert dict(v.tags) == {"trained_with": "mlnb.train"}
    assert "registered toy:1" in repr(run)

    loaded = reg.load(v.ref)
    x, _ = make_blobs(32, seed=9)
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_register_without_a_registry_uses_the_default_home(data, tmp_path, monkeypatch):
    import mlnb
    from mlnb.training import train

    home = tmp_path / "train-home"
    monkeypatch.setenv("MLNB_HOME", str(home))
    x, y = make_blobs(32, seed=0)
    model = make_net()
    # in-process :memory: registry would vanish with the call; use the file registry
    run = train(model, loader(x, y, 16), loss_fn=F.cross_entropy,
                optimizer=torch.optim.SGD(model.parameters(), lr=0.1), register="plain",
                device="cpu", progress=False)
    assert run.version.name == "plain"
    assert run.version.metrics.keys() == {"train_loss", "best_train_loss"}
    from mlnb.registry import server

    try:
        with mlnb.Registry(home) as again:
            assert again.get("plain:1").params["batch_size"] == 16
    finally:
        server.stop(str(home / "registry.duckdb"), timeout=15, force=True)

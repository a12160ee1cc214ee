"""``register=`` stores the trained model with its metrics, hyper-parameters and tag."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from training.toydata import loader, make_blobs, make_net, same_weights, weights


def test_register_stores_the_best_checkpoint_with_its_provenance(reg, data):
    from mlnb.training import train

    model = make_net()
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    run = train(model, data[0], val_loader=data[1], loss_fn=F.cross_entropy, optimizer=opt,
                epochs=3, grad_accum=2, clip_grad=1.0, seed=3, register="toy", registry=reg,
                device="cpu", progress=False, source="model = make_net()  # the cell")
    v = run.version
    assert (v.name, v.version) == ("toy", 1)
    assert reg.get("toy:1").ref == v.ref
    best = run.history[run.history["epoch"] == run.best_epoch].iloc[0]
    assert dict(v.metrics) == pytest.approx({
        "train_loss": best["train_loss"], "val_loss": best["val_loss"],
        "val_accuracy": best["val_accuracy"], "best_val_loss": run.best_value,
    })
    p = dict(v.params)
    assert {k: p[k] for k in ("epochs", "epochs_run", "lr", "batch_size", "grad_accum",
                              "clip_grad", "seed", "precision", "device", "optimizer",
                              "scheduler", "monitor", "register_from", "registered_epoch")} == {
        "epochs": 3, "epochs_run": 3, "lr": 0.01, "batch_size": 32, "grad_accum": 2,
        "clip_grad": 1.0, "seed": 3, "precision": "fp32", "device": "cpu",
        "optimizer": "AdamW", "scheduler": None, "monitor": "val_loss",
        "register_from": "best", "registered_epoch": run.best_epoch,
    }
    # the data fingerprint: shapes, dtypes, a hash of the examples
    assert p["data"]["examples"] == 256 and len(p["data"]["hash"]) == 64
    assert [f["shape"] for f in p["data"]["fields"]] == [[2], []]
    # the code that trained it, and where it ran
    assert p["source"]["source"] == "model = make_net()  # the cell"
    assert p["environment"]["torch"] == torch.__version__
    assert v.tags["trained_with"] == "mlnb.train"
    assert v.tags["run"] == f"toy/{run.run_id}"
    assert v.tags["checkpoint"] == run.best_checkpoint.file
    assert "registered toy:1" in repr(run)

    # the registered weights are the best epoch's, and the model keeps the last ones
    from mlnb.training.runs import RunStore

    handle = RunStore.from_registry(reg).open("toy", run.run_id)
    best_weights = handle.load(run.best_checkpoint)["model"]
    loaded = reg.load(v.ref)
    assert same_weights(weights(loaded), best_weights)
    assert run.best_checkpoint.epoch == run.best_epoch


def test_register_from_last_stores_the_model_as_trained(memreg, data):
    from mlnb.training import train

    model = make_net()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    run = train(model, data[0], val_loader=data[1], loss_fn=F.cross_entropy, optimizer=opt,
                epochs=2, register="toy", register_from="last", registry=memreg,
                device="cpu", progress=False)
    assert run.version.params["register_from"] == "last"
    assert same_weights(weights(memreg.load(run.version.ref)), weights(model))


def test_init_from_fine_tunes_a_registered_version_and_records_the_parent(memreg, data):
    from mlnb.training import train

    base = make_net(seed=1)
    memreg.register("toy", base)
    memreg.promote("toy:1", "production")
    model = make_net(seed=2)  # other weights: init_from must replace them
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the weights stay as loaded
    run = train(model, data[0], loss_fn=F.cross_entropy, optimizer=opt, epochs=1,
                init_from="toy@production", register="toy", register_from="last",
                registry=memreg, device="cpu", progress=False)
    assert same_weights(weights(model), weights(base))
    assert run.version.params["init_from"] == "toy:1"
    edges = memreg.lineage("toy:2").edges
    assert [(e.source, e.kind, e.target) for e in edges] == [("toy:2", "parent", "toy:1")]


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

"""Registering and loading versions: every format, metadata, and bad input."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import mlnb


def test_torch_model_round_trip_on_both_registry_kinds(anyreg, make_mlp):
    import torch

    model = make_mlp(1)
    v = anyreg.register("mnist-mlp", model, metrics={"val_acc": 0.97}, params={"lr": 1e-3},
                        tags={"team": "vision"}, description="first try")
    assert (v.name, v.version, v.status, v.format) == ("mnist-mlp", 1, "active", "torch")
    assert v.metrics == {"val_acc": 0.97} and v.params == {"lr": 1e-3}
    assert v.tags == {"team": "vision"} and v.description == "first try"
    assert v.created_by == "tester" and v.files
    loaded = anyreg.load("mnist-mlp:1", device="cpu")
    x = torch.randn(5, 4)
    assert torch.equal(loaded(x), model.eval()(x))


def test_versions_count_from_one_and_get_resolves_every_form(anyreg, tmp_path):
    f = tmp_path / "w.txt"
    for i in range(3):
        f.write_text(f"weights {i}")
        anyreg.register("m", f, metrics={"acc": 0.5 + i / 10})
    assert [v.version for v in anyreg.versions("m")] == [1, 2, 3]
    assert anyreg.get("m").version == 3
    assert anyreg.get("m:2").metrics == {"acc": 0.6}
    anyreg.set_alias("m:2", "champion")
    assert anyreg.get("m@champion").version == 2


def test_file_and_directory_load_as_verified_local_paths(anyreg, tmp_path):
    d = tmp_path / "tok"
    (d / "sub").mkdir(parents=True)
    (d / "vocab.txt").write_text("a\nb\n")
    (d / "sub" / "merges.txt").write_text("ab\n")
    anyreg.register("tokenizer", d)
    out = anyreg.load("tokenizer")
    assert (Path(out) / "vocab.txt").read_text() == "a\nb\n"
    assert (Path(out) / "sub" / "merges.txt").read_text() == "ab\n"
    single = tmp_path / "one.bin"
    single.write_bytes(b"\x00\x01\x02")
    anyreg.register("blob", single)
    assert Path(anyreg.load("blob")).read_bytes() == b"\x00\x01\x02"


def test_pickled_object_needs_trust(anyreg):
    anyreg.register("lookup", {"a": 1, "b": [1, 2]})
    with pytest.raises(mlnb.UntrustedObject, match="trust=True"):
        anyreg.load("lookup")
    assert anyreg.load("lookup", trust=True) == {"a": 1, "b": [1, 2]}


def test_identical_files_are_stored_once(anyreg, tmp_path):
    f = tmp_path / "same.bin"
    f.write_bytes(b"x" * 10_000)
    a = anyreg.register("a", f)
    b = anyreg.register("b", f)
    assert a.files[0].sha256 == b.files[0].sha256
    assert len(list(anyreg.store.iter_blobs())) == 1


def test_parent_records_lineage(anyreg, tmp_path):
    f = tmp_path / "w"
    f.write_text("1")
    anyreg.register("m", f)
    f.write_text("2")
    v2 = anyreg.register("m", f, parent="m:1")
    assert v2.parent == "m:1"
    edges = anyreg.lineage("m:1").edges
    assert [(e.source, e.kind, e.target) for e in edges] == [("m:2", "parent", "m:1")]


def test_non_finite_metrics_are_stored_but_never_best(anyreg, tmp_path):
    f = tmp_path / "w"
    for i, acc in enumerate([0.7, float("nan"), float("inf"), 0.9, 0.8]):
        f.write_text(str(i))
        anyreg.register("m", f, metrics={"val_acc": acc})
    assert math.isnan(anyreg.get("m:2").metrics["val_acc"])
    assert anyreg.get("m:3").metrics["val_acc"] == math.inf
    assert anyreg.best("m", metric="val_acc").version == 4
    assert anyreg.best("m", metric="val_acc", mode="min").version == 1
    anyreg.retire("m:4")
    assert anyreg.best("m", metric="val_acc").version == 5


@pytest.mark.parametrize("name", [
    "../etc/passwd", "a/b", "", "-flag", "x" * 129, "m; drop table versions", "m'--", "mé",
])
def test_bad_names_are_refused_before_anything_is_stored(anyreg, tmp_path, name):
    f = tmp_path / "w"
    f.write_text("x")
    with pytest.raises(mlnb.InvalidName, match="letters, digits"):
        anyreg.register(name, f)
    assert list(anyreg.store.iter_blobs()) == []
    assert anyreg.models() == []


@pytest.mark.parametrize("kwargs, match", [
    ({"metrics": {"acc": "high"}}, "must be a number"),
    ({"metrics": {"acc": True}}, "must be a number"),
    ({"metrics": {"": 1.0}}, "invalid metric name"),
    ({"params": {"fn": print}}, "JSON-like"),
    ({"params": {"lr": float("nan")}}, "JSON-like"),
    ({"tags": {"t": object()}}, "must be a string"),
    ({"parent": "m:99"}, "no version 99"),
    ({"parent": "nosuch:1"}, "no model 'nosuch'"),
])
def test_bad_metadata_is_refused_before_anything_is_stored(anyreg, tmp_path, kwargs, match):
    f = tmp_path / "w"
    f.write_text("x")
    anyreg.register("m", f)
    blobs = list(anyreg.store.iter_blobs())
    f.write_text("y")
    with pytest.raises(mlnb.MlnbError, match=match):
        anyreg.register("m", f, **kwargs)
    assert [v.version for v in anyreg.versions("m")] == [1]
    assert list(anyreg.store.iter_blobs()) == blobs


def test_unknown_references_suggest_close_names(anyreg, tmp_path):
    f = tmp_path / "w"
    f.write_text("x")
    anyreg.register("mnist-mlp", f)
    anyreg.promote("mnist-mlp:1", "production")
    with pytest.raises(mlnb.NotFound, match="did you mean 'mnist-mlp'"):
        anyreg.get("mnsit-mlp")
    with pytest.raises(mlnb.NotFound, match="did you mean 'production'"):
        anyreg.get("mnist-mlp@prodution")
    with pytest.raises(mlnb.NotFound, match="versions are 1..1"):
        anyreg.get("mnist-mlp:7")
    with pytest.raises(mlnb.InvalidName, match="name:VERSION"):
        anyreg.get("mnist-mlp:latest")


def test_loading_a_corrupted_blob_raises_integrity_error_naming_the_file(anyreg, tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"good bytes" * 100)
    v = anyreg.register("m", f)
    blob = Path(anyreg.storage_url) / "objects" / v.files[0].sha256[:2] / v.files[0].sha256
    blob.chmod(0o644)
    blob.write_bytes(b"evil bytes" * 100)
    with pytest.raises(mlnb.IntegrityError, match="m:1 file w.bin"):
        anyreg.load("m:1")


def test_version_records_are_snapshots_the_caller_cannot_corrupt(anyreg, tmp_path):
    f = tmp_path / "w"
    f.write_text("x")
    v = anyreg.register("m", f, metrics={"acc": 0.5}, params={"layers": [1, 2]})
    with pytest.raises(TypeError):
        v.metrics["acc"] = 1.0
    with pytest.raises(TypeError):
        anyreg.versions("m")[0].params["layers"] = []
    assert anyreg.get("m:1").metrics == {"acc": 0.5}
    assert dict(anyreg.get("m:1").params) == {"layers": [1, 2]}

"""Export bundles: portable, deterministic, verified on import."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

import mlnb


def test_export_then_import_into_another_registry(anyreg, make_mlp, tmp_path):
    import torch

    model = make_mlp(3)
    anyreg.register("net", model, metrics={"acc": 0.9}, params={"lr": 0.01},
                    tags={"team": "a"}, description="to ship")
    bundle = anyreg.export("net:1", tmp_path / "net1.tar.gz")
    other = mlnb.Registry(tmp_path / "other", registry=":memory:", storage=tmp_path / "other-art")
    v = other.import_bundle(bundle)
    assert (v.ref, v.metrics, v.params, v.tags, v.description) == (
        "net:1", {"acc": 0.9}, {"lr": 0.01}, {"team": "a"}, "to ship")
    x = torch.randn(2, 4)
    assert torch.equal(other.load("net:1")(x), model.eval()(x))
    (entry,) = [e for e in other.audit("net") if e.action == "register"]
    assert entry.details == {"imported_from": "net:1", "bundle": "net1.tar.gz"}
    renamed = other.import_bundle(bundle, name="net-copy")
    assert renamed.ref == "net-copy:1"


def test_export_is_deterministic(anyreg, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.txt").write_text("a")
    (d / "b.txt").write_text("b")
    anyreg.register("files", d)
    one = anyreg.export("files:1", tmp_path / "1.tar.gz").read_bytes()
    two = anyreg.export("files:1", tmp_path / "2.tar.gz").read_bytes()
    assert one == two


def _tamper(src: Path, dst: Path, member: str, data: bytes) -> None:
    with tarfile.open(src) as tin, tarfile.open(dst, "w:gz") as tout:
        for info in tin.getmembers():
            body = tin.extractfile(info).read() if info.isfile() else None
            if info.name == member:
                body = data
                info.size = len(data)
            tout.addfile(info, io.BytesIO(body) if body is not None else None)


def test_a_tampered_bundle_is_refused_and_registers_nothing(anyreg, tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"original weights")
    anyreg.register("m", f)
    bundle = anyreg.export("m:1", tmp_path / "m.tar.gz")
    bad = tmp_path / "bad.tar.gz"
    _tamper(bundle, bad, "files/w.bin", b"poisoned weights")
    with pytest.raises(mlnb.IntegrityError, match="does not match its recorded hash"):
        anyreg.import_bundle(bad)
    assert [v.version for v in anyreg.versions("m")] == [1]


def test_malicious_or_foreign_archives_are_refused(anyreg, tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../../escape.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(mlnb.UnsafeArchive):
        anyreg.import_bundle(evil)
    assert not (tmp_path.parent / "escape.txt").exists()
    foreign = tmp_path / "foreign.tar.gz"
    with tarfile.open(foreign, "w:gz") as tar:
        info = tarfile.TarInfo("readme.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(mlnb.InvalidArgument, match="not an mlnb bundle"):
        anyreg.import_bundle(foreign)
    notgz = tmp_path / "x.tar.gz"
    notgz.write_bytes(b"plain text")
    with pytest.raises(mlnb.MlnbError):
        anyreg.import_bundle(notgz)
    assert anyreg.models() == []

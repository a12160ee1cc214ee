"""The public surface of mlnb.serialize: exports, format choice, dispatch errors, lazy imports."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mlnb.serialize
from mlnb.errors import Conflict, InvalidArgument, MissingDependency, NotFound
from mlnb.serialize import Staged, describe, load, stage

SRC = Path(__file__).resolve().parents[2] / "src"


def test_all_is_sorted_and_complete():
    assert mlnb.serialize.__all__ == sorted(mlnb.serialize.__all__)
    assert set(mlnb.serialize.__all__) == {"Staged", "describe", "load", "stage"}
    for name in mlnb.serialize.__all__:
        assert getattr(mlnb.serialize, name) is not None


def test_staged_is_frozen(tmp_path):
    staged = stage({"a": 1}, tmp_path)
    assert isinstance(staged, Staged)
    with pytest.raises(dataclasses.FrozenInstanceError):
        staged.format = "files"  # type: ignore[misc]


def test_describe_picks_format(tmp_path):
    torch = pytest.importorskip("torch")
    (tmp_path / "f.bin").write_bytes(b"x")
    assert describe(tmp_path / "f.bin") == "files"
    assert describe(str(tmp_path)) == "files"
    assert describe(torch.nn.Linear(2, 2)) == "torch"
    assert describe({"a": 1}) == "pickle"
    assert describe(b"bytes are data, not paths") == "pickle"


@pytest.mark.parametrize("text", ["./missing.bin", "dir/missing.bin", "~/surely-missing-mlnb-file"])
def test_describe_missing_path_string(tmp_path, monkeypatch, text):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotFound, match="path does not exist"):
        describe(text)


def test_plain_string_is_never_pickled(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotFound, match="never pickled"):
        stage("hello world", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_empty_string_is_refused(tmp_path):
    with pytest.raises(InvalidArgument, match="empty path"):
        describe("")


def test_init_kwargs_only_for_torch(tmp_path):
    with pytest.raises(InvalidArgument, match="only to torch"):
        stage({"a": 1}, tmp_path, init_kwargs={"x": 1})


def test_load_unknown_format(tmp_path):
    with pytest.raises(InvalidArgument, match="unknown format 'onnx'"):
        load("onnx", tmp_path, {})


def test_load_metadata_must_be_dict(tmp_path):
    with pytest.raises(InvalidArgument, match="metadata must be a dict"):
        load("files", tmp_path, None)  # type: ignore[arg-type]


def test_load_newer_format_version(tmp_path):
    with pytest.raises(Conflict, match="upgrade mlnb"):
        load("files", tmp_path, {"format_version": 2, "layout": "directory"})


def test_torch_options_refused_for_other_formats(tmp_path):
    with pytest.raises(InvalidArgument, match="device apply only to torch"):
        load("pickle", tmp_path, {}, device="cpu", trust=True)
    with pytest.raises(InvalidArgument, match="model_class, into apply only to torch"):
        load("files", tmp_path, {"layout": "directory"}, model_class=dict, into=object())


def test_missing_safetensors(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(MissingDependency, match=r'pip install "mlnb\[torch\]"') as info:
        stage(torch.nn.Linear(2, 2), tmp_path)
    assert info.value.package == "safetensors"


def test_missing_torch_on_load(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingDependency, match="torch is needed"):
        load("torch", tmp_path, {})


def test_import_and_non_torch_use_do_not_import_torch(tmp_path):
    (tmp_path / "data.txt").write_text("x")
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        import mlnb.serialize as s
        tmp = Path({str(tmp_path)!r})
        (tmp / "work").mkdir()
        assert s.describe({{"a": 1}}) == "pickle"
        staged = s.stage({{"a": 1}}, tmp / "work")
        assert s.load("pickle", tmp / "work", staged.metadata, trust=True) == {{"a": 1}}
        assert s.stage(tmp / "data.txt", tmp).format == "files"
        heavy = sorted(m for m in ("torch", "safetensors", "numpy") if m in sys.modules)
        assert not heavy, heavy
        """
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr

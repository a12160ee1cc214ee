"""The files format: paths are listed, never copied; links and special files are refused."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from mlnb.errors import InvalidArgument, NotFound
from mlnb.serialize import load, stage


def materialise(staged, root: Path) -> dict:
    """Copy staged files to *root* as storage would; return the metadata after a JSON trip."""
    for rel, src in staged.files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, root / rel)
    return json.loads(json.dumps(staged.metadata))


@pytest.fixture
def work(tmp_path):
    path = tmp_path / "work"
    path.mkdir()
    return path


def test_single_file(tmp_path, work):
    src = tmp_path / "weights.bin"
    src.write_bytes(b"\x00\x01")
    staged = stage(src, work)
    assert staged.format == "files"
    assert staged.files == [("weights.bin", src)]
    assert list(work.iterdir()) == []  # nothing copied
    root = tmp_path / "root"
    root.mkdir()
    metadata = materialise(staged, root)
    assert metadata == {"format_version": 1, "layout": "file", "name": "weights.bin"}
    loaded = load("files", root, metadata)
    assert loaded == root / "weights.bin"
    assert loaded.read_bytes() == b"\x00\x01"
    assert load("files", root / "weights.bin", metadata) == root / "weights.bin"


def test_string_path_relative_to_cwd(tmp_path, work, monkeypatch):
    (tmp_path / "model.pt").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    staged = stage("model.pt", work)
    assert staged.files == [("model.pt", tmp_path / "model.pt")]
    assert staged.files[0][1].is_absolute()


def test_tilde_is_expanded(tmp_path, work, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "f.txt").write_text("x")
    assert stage("~/f.txt", work).files == [("f.txt", tmp_path / "f.txt")]


def test_nested_directory(tmp_path, work):
    src = tmp_path / "model"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "b.txt").write_text("b")
    (src / "a.txt").write_text("a")
    (src / ".hidden").write_text("h")
    (src / "sub" / "c.txt").write_text("c")
    (src / "sub" / "deeper" / "d.txt").write_text("d")
    (src / "empty").mkdir()
    staged = stage(src, work)
    assert [rel for rel, _ in staged.files] == [
        ".hidden",
        "a.txt",
        "b.txt",
        "sub/c.txt",
        "sub/deeper/d.txt",
    ]
    assert all(path == src / rel for rel, path in staged.files)
    assert list(work.iterdir()) == []
    root = tmp_path / "root"
    root.mkdir()
    metadata = materialise(staged, root)
    assert metadata == {"format_version": 1, "layout": "directory", "count": 5}
    assert load("files", root, metadata) == root
    assert (root / "sub" / "deeper" / "d.txt").read_text() == "d"


def test_directory_with_one_file_loads_as_directory(tmp_path, work):
    src = tmp_path / "model"
    src.mkdir()
    (src / "only.txt").write_text("x")
    staged = stage(src, work)
    root = tmp_path / "root"
    root.mkdir()
    assert load("files", root, materialise(staged, root)) == root


def test_symlinks_inside_directory_are_refused(tmp_path, work):
    src = tmp_path / "model"
    (src / "sub").mkdir(parents=True)
    (src / "real.txt").write_text("x")
    outside = tmp_path / "secret.txt"
    outside.write_text("s")
    (src / "sub" / "link.txt").symlink_to(outside)
    (src / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(InvalidArgument) as info:
        stage(src, work)
    message = str(info.value)
    assert "sub/link.txt (symlink)" in message
    assert "dirlink (symlink)" in message


def test_special_file_inside_directory_is_refused(tmp_path, work):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    src = tmp_path / "model"
    src.mkdir()
    (src / "a.txt").write_text("a")
    os.mkfifo(src / "pipe")
    with pytest.raises(InvalidArgument, match=r"pipe \(special file\)"):
        stage(src, work)


def test_symlink_named_directly_is_followed(tmp_path, work):
    target = tmp_path / "blob"
    target.write_text("x")
    link = tmp_path / "model.bin"
    link.symlink_to(target)
    assert stage(link, work).files == [("model.bin", link)]


def test_dangling_symlink(tmp_path, work):
    link = tmp_path / "model.bin"
    link.symlink_to(tmp_path / "gone")
    with pytest.raises(NotFound, match="symlink to a path that does not exist"):
        stage(link, work)


def test_empty_directory_is_refused(tmp_path, work):
    src = tmp_path / "model"
    (src / "only-empty-dirs").mkdir(parents=True)
    with pytest.raises(InvalidArgument, match="holds no files"):
        stage(src, work)


def test_missing_path(tmp_path, work):
    with pytest.raises(NotFound, match="path does not exist"):
        stage(tmp_path / "nope", work)


def test_load_refuses_unsafe_name(tmp_path):
    with pytest.raises(InvalidArgument, match="unsafe file name"):
        load("files", tmp_path, {"layout": "file", "name": "../etc/passwd"})


def test_load_missing_file(tmp_path):
    with pytest.raises(NotFound, match="missing"):
        load("files", tmp_path, {"layout": "file", "name": "weights.bin"})

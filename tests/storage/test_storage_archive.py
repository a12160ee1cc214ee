"""pack makes the same bytes from the same tree; unpack refuses every unsafe archive.

The unsafe archives are built member by member with tarfile, as an attacker
would, and each refusal is checked the way a user would: the error class, the
member named in the message, nothing written outside the target and no
half-extracted target left behind.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
import time
from pathlib import Path

import pytest

from mlnb.errors import InvalidArgument, NotFound, UnsafeArchive
from mlnb.storage import pack, unpack


def _tree(root: Path, order: list[str], mtime: float, exec_mode: int, file_mode: int) -> Path:
    contents = {
        "model/weights.bin": b"\x00\x01" * 5000,
        "model/config.json": b'{"layers": 3}',
        "run.sh": b"#!/bin/sh\necho hi\n",
        "README.md": b"# model\n",
    }
    for rel in order:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(contents[rel])
        os.chmod(path, exec_mode if rel.endswith(".sh") else file_mode)
    (root / "empty-dir").mkdir()
    for path in [*root.rglob("*"), root]:
        os.utime(path, (mtime, mtime))
    return root


def _make_tgz(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """Write a .tar.gz holding exactly these members (headers as given)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    path.write_bytes(gzip.compress(raw.getvalue()))
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


# -- pack ------------------------------------------------------------------


def test_pack_is_deterministic(tmp_path: Path) -> None:
    a = _tree(tmp_path / "a", ["README.md", "run.sh", "model/weights.bin", "model/config.json"],
              mtime=1_000_000, exec_mode=0o700, file_mode=0o600)
    b = _tree(tmp_path / "b", ["model/config.json", "model/weights.bin", "run.sh", "README.md"],
              mtime=time.time(), exec_mode=0o755, file_mode=0o664)

    pack(a, tmp_path / "a1.tar.gz")
    time.sleep(0.01)
    pack(a, tmp_path / "a2.tar.gz")
    pack(b, tmp_path / "b.tar.gz")

    first = (tmp_path / "a1.tar.gz").read_bytes()
    assert first == (tmp_path / "a2.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()
    assert first[4:8] == b"\0\0\0\0"  # gzip header mtime
    assert not first[3] & 0x08  # no file name in the gzip header
    with tarfile.open(tmp_path / "a1.tar.gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [
        "README.md", "empty-dir", "model", "model/config.json", "model/weights.bin", "run.sh",
    ]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    assert {m.name: m.mode for m in members} == {
        "README.md": 0o644, "empty-dir": 0o755, "model": 0o755,
        "model/config.json": 0o644, "model/weights.bin": 0o644, "run.sh": 0o755,
    }
    assert sorted(os.listdir(tmp_path)) == ["a", "a1.tar.gz", "a2.tar.gz", "b", "b.tar.gz"]


def test_pack_unpack_round_trip(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", ["README.md", "run.sh", "model/weights.bin",
                                   "model/config.json"], 1e9, 0o755, 0o644)
    pack(src, tmp_path / "m.tar.gz")

    names = unpack(tmp_path / "m.tar.gz", tmp_path / "out")

    assert names == ["README.md", "empty-dir", "model", "model/config.json",
                     "model/weights.bin", "run.sh"]
    for rel in ("README.md", "run.sh", "model/weights.bin", "model/config.json"):
        assert (tmp_path / "out" / rel).read_bytes() == (src / rel).read_bytes()
    assert (tmp_path / "out" / "empty-dir").is_dir()
    assert os.access(tmp_path / "out" / "run.sh", os.X_OK)
    assert not os.access(tmp_path / "out" / "README.md", os.X_OK)
    assert sorted(os.listdir(tmp_path)) == ["m.tar.gz", "out", "src"]


def test_pack_refuses_symlinks(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "link").symlink_to("/etc/passwd")
    with pytest.raises(InvalidArgument, match="link"):
        pack(tmp_path / "src", tmp_path / "m.tar.gz")
    assert sorted(os.listdir(tmp_path)) == ["src"]


def test_unpack_into_empty_existing_dir(tmp_path: Path) -> None:
    _make_tgz(tmp_path / "a.tgz", [_file("a.txt", b"hello")])
    (tmp_path / "out").mkdir()
    assert unpack(tmp_path / "a.tgz", tmp_path / "out") == ["a.txt"]
    assert (tmp_path / "out" / "a.txt").read_bytes() == b"hello"


def test_unpack_normalises_dot_prefixes(tmp_path: Path) -> None:
    _make_tgz(tmp_path / "a.tgz", [_file("./a/./b.txt", b"hi")])
    assert unpack(tmp_path / "a.tgz", tmp_path / "out") == ["a/b.txt"]
    assert (tmp_path / "out" / "a" / "b.txt").read_bytes() == b"hi"


# -- refusals ---------------------------------------------------------------------


def _assert_refused(tmp_path: Path, archive: Path, member: str, *, why: str,
                    error: type[Exception] = UnsafeArchive, **limits: int) -> None:
    before = sorted(os.listdir(tmp_path))
    outside = sorted(os.listdir(tmp_path.parent))
    with pytest.raises(error) as info:
        unpack(archive, tmp_path / "out", **limits)
    message = str(info.value)
    assert repr(member) in message, message
    assert why in message, message
    # No target, no temp dir beside it, nothing new one level up either.
    assert sorted(os.listdir(tmp_path)) == before
    assert sorted(os.listdir(tmp_path.parent)) == outside


def test_refuses_absolute_path(tmp_path: Path) -> None:
    evil = str(tmp_path.parent / "abs-evil.txt")
    archive = _make_tgz(tmp_path / "a.tgz", [_file("ok.txt"), _file(evil)])
    _assert_refused(tmp_path, archive, evil, why="absolute path")
    assert not Path(evil).exists()


@pytest.mark.parametrize("name", ["../evil.txt", "sub/../../evil.txt", "sub/.."])
def test_refuses_dotdot(tmp_path: Path, name: str) -> None:
    archive = _make_tgz(tmp_path / "a.tgz", [_file("ok.txt"), _file(name)])
    _assert_refused(tmp_path, archive, name, why="'..'")
    assert not (tmp_path.parent / "evil.txt").exists()


def test_refuses_symlink(tmp_path: Path) -> None:
    archive = _make_tgz(tmp_path / "a.tgz", [
        _file("ok.txt"), _special("escape", tarfile.SYMTYPE, "/etc"), _file("escape/passwd"),
    ])
    _assert_refused(tmp_path, archive, "escape", why="symbolic link")


def test_refuses_hardlink(tmp_path: Path) -> None:
    archive = _make_tgz(tmp_path / "a.tgz", [
        _file("ok.txt"), _special("hard", tarfile.LNKTYPE, "ok.txt"),
    ])
    _assert_refused(tmp_path, archive, "hard", why="hard link")


@pytest.mark.parametrize(("kind", "why"), [
    (tarfile.CHRTYPE, "device"), (tarfile.BLKTYPE, "device"), (tarfile.FIFOTYPE, "FIFO"),
])
def test_refuses_device_and_fifo(tmp_path: Path, kind: bytes, why: str) -> None:
    archive = _make_tgz(tmp_path / "a.tgz", [_file("ok.txt"), _special("dev", kind)])
    _assert_refused(tmp_path, archive, "dev", why=why)


def test_refuses_too_many_members(tmp_path: Path) -> None:
    archive = _make_tgz(tmp_path / "a.tgz", [_file(f"f{i}.txt") for i in range(5)])
    _assert_refused(tmp_path, archive, "f3.txt", why="3 members", max_members=3)
    assert unpack(archive, tmp_path / "out", max_members=5) == [f"f{i}.txt" for i in range(5)]


def test_refuses_declared_size_over_limit(tmp_path: Path) -> None:
    # A header that claims a terabyte, with no data behind it: refused on the header.
    huge = tarfile.TarInfo("huge.bin")
    huge.size = 2**40
    ok, data = _file("ok.txt")
    stream = ok.tobuf(tarfile.PAX_FORMAT) + data.ljust(512, b"\0") + huge.tobuf(tarfile.PAX_FORMAT)
    (tmp_path / "a.tgz").write_bytes(gzip.compress(stream))
    _assert_refused(tmp_path, tmp_path / "a.tgz", "huge.bin", why="max_bytes=1048576",
                    max_bytes=2**20)


def test_refuses_total_size_over_limit(tmp_path: Path) -> None:
    archive = _make_tgz(tmp_path / "a.tgz", [
        _file("a.bin", b"a" * 600_000), _file("b.bin", b"b" * 600_000),
    ])
    _assert_refused(tmp_path, archive, "b.bin", why="max_bytes", max_bytes=1_000_000)


def test_refuses_gzip_bomb_with_lying_headers(tmp_path: Path) -> None:
    # Every member declares a few bytes, but a PAX record the headers carry
    # decompresses to 8 MB.
    bomb = tarfile.TarInfo("bomb.txt")
    bomb.size = 3
    bomb.pax_headers = {"comment": "z" * 8_000_000}
    archive = _make_tgz(tmp_path / "a.tgz", [_file("ok.txt"), (bomb, b"abc")])
    assert archive.stat().st_size < 100_000
    _assert_refused(tmp_path, archive, "ok.txt", why="more than max_bytes=10000",
                    max_bytes=10_000)
    # With room in max_bytes, no member may still carry over 64 KiB of headers.
    _assert_refused(tmp_path, archive, "ok.txt", why="65536 bytes of headers")


def test_bytes_are_capped_while_decompressing(tmp_path: Path) -> None:
    # 50 files of 100 kB each: the declared total is checked member by member,
    # so extraction stops at the member that crosses the limit.
    members = [_file(f"f{i:02}", b"\0" * 100_000) for i in range(50)]
    archive = _make_tgz(tmp_path / "a.tgz", members)
    _assert_refused(tmp_path, archive, "f10", why="max_bytes=1000000", max_bytes=1_000_000)


def test_small_pax_headers_are_fine(tmp_path: Path) -> None:
    name = "d" * 100 + "/" + "e" * 100 + "/" + "f" * 100 + ".txt"  # needs a PAX path
    info, data = _file(name, b"long name")
    info.pax_headers = {"comment": "z" * 10_000}
    archive = _make_tgz(tmp_path / "a.tgz", [(info, data)])
    assert unpack(archive, tmp_path / "out") == [name]
    assert (tmp_path / "out" / name).read_bytes() == b"long name"


def test_refuses_duplicate_member(tmp_path: Path) -> None:
    archive = _make_tgz(tmp_path / "a.tgz", [_file("a.txt", b"1"), _file("a.txt", b"2")])
    _assert_refused(tmp_path, archive, "a.txt", why="twice")


# -- broken input ------------------------------------------------------------------


def test_not_gzip(tmp_path: Path) -> None:
    (tmp_path / "a.tgz").write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(InvalidArgument, match="not a gzip file"):
        unpack(tmp_path / "a.tgz", tmp_path / "out")
    assert sorted(os.listdir(tmp_path)) == ["a.tgz"]


def test_truncated_archive(tmp_path: Path) -> None:
    archive = _make_tgz(tmp_path / "a.tgz", [_file("a.bin", os.urandom(200_000))])
    archive.write_bytes(archive.read_bytes()[:50_000])
    with pytest.raises(InvalidArgument, match=r"not a valid \.tar\.gz"):
        unpack(archive, tmp_path / "out")
    assert sorted(os.listdir(tmp_path)) == ["a.tgz"]


def test_gzip_of_garbage(tmp_path: Path) -> None:
    (tmp_path / "a.tgz").write_bytes(gzip.compress(b"\x01" * 4096))
    with pytest.raises(InvalidArgument, match=r"a\.tgz"):
        unpack(tmp_path / "a.tgz", tmp_path / "out")
    assert sorted(os.listdir(tmp_path)) == ["a.tgz"]


def test_missing_archive(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"nope\.tgz"):
        unpack(tmp_path / "nope.tgz", tmp_path / "out")


def test_non_empty_target(tmp_path: Path) -> None:
    archive = _make_tgz(tmp_path / "a.tgz", [_file("a.txt")])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_bytes(b"keep")
    with pytest.raises(InvalidArgument, match="not an empty directory"):
        unpack(archive, tmp_path / "out")
    assert os.listdir(tmp_path / "out") == ["mine.txt"]


def test_extracted_files_are_plain(tmp_path: Path) -> None:
    info, data = _file("x.bin", b"data")
    info.mode = 0o4777  # setuid, world-writable
    archive = _make_tgz(tmp_path / "a.tgz", [(info, data)])
    unpack(archive, tmp_path / "out")
    mode = stat.S_IMODE((tmp_path / "out" / "x.bin").stat().st_mode)
    assert not mode & (stat.S_ISUID | stat.S_IWOTH)

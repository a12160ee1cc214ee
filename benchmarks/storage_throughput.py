"""Throughput of BlobStore.put_file and get_file against plain SHA-256 on this machine.

Three row sets, each figure the median of ``--repeat`` runs (the minimum is
shown beside it, since other processes on a shared machine inflate single runs):

* a large file (1 GiB unless ``--size-mb`` says otherwise), as GB/s and as a
  percentage of SHA-256 alone; put and get should reach 70% of it;
* a 100 MiB file, in milliseconds;
* a 1 KiB file, in microseconds: storing it when its blob already exists
  (``put_file`` and ``put_bytes``), and reading it back.

The large rows are:

* sha256 alone: ``hashlib.file_digest`` over the file, the reference;
* ``BlobStore.put_file``: hash, copy to ``tmp/``, publish;
* ``BlobStore.get_file``, first read in the process: copy out and hash;
* ``BlobStore.get_file``, second read: the blob was verified earlier in this
  process and its metadata has not changed, so only the copy is left;
* ``shutil.copyfile``: a kernel copy without hashing, for comparison.

All runs read from the page cache (the file is read once before timing).
Before each timed run the previous output is deleted and ``os.sync()`` flushes
dirty pages, so that the write-back of one run does not throttle the next; the
flush is not timed.  The load average is printed before and after.

Run: ``python benchmarks/storage_throughput.py [--size-mb 1024] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mlnb.storage import BlobStore

try:
    from mlnb.storage import _verified
except ImportError:  # a version without the memory of verified blobs
    _verified = None  # type: ignore[assignment]

TARGET = 0.70
MIB = 2**20


def _write_random(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(16 * MIB, left)
            f.write(os.urandom(n))
            left -= n


def _forget_verified() -> None:
    """Make the next read the first one in this process."""
    if _verified is not None:
        _verified.clear()


def _times(run: Callable[[], object], before: Callable[[], object], repeat: int,
           *, sync: bool = True) -> list[float]:
    """Wall times of ``repeat`` runs, each after ``before`` (and a sync, untimed)."""
    times = []
    for _ in range(repeat):
        before()
        if sync:
            os.sync()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def _large_rows(work: Path, size: int, repeat: int) -> dict[str, list[float]]:
    """Time the large-file operations on a fresh random file of ``size`` bytes."""
    src = work / "source.bin"
    _write_random(src, size)
    with open(src, "rb") as f:  # warm the page cache
        expected = hashlib.file_digest(f, "sha256").hexdigest()
    store_dir, out, copy = work / "store", work / "out.bin", work / "copy.bin"

    def sha256_alone() -> None:
        with open(src, "rb") as f:
            hashlib.file_digest(f, "sha256")

    def reset_store() -> None:
        shutil.rmtree(store_dir, ignore_errors=True)
        _forget_verified()

    def put() -> None:
        assert BlobStore(store_dir).put_file(src).sha256 == expected

    def get() -> None:
        BlobStore(store_dir).get_file(expected, out, size=size)

    def first_read() -> None:
        out.unlink(missing_ok=True)
        _forget_verified()

    rows = {
        "sha256 alone (hashlib.file_digest)": _times(sha256_alone, lambda: None, repeat),
        "BlobStore.put_file": _times(put, reset_store, repeat),
    }
    BlobStore(store_dir).put_file(src)
    # A blob whose ctime is this recent is re-hashed on every read (a change
    # within the same timestamp tick would go unseen): let it settle first.
    time.sleep(getattr(_verified, "_SETTLE_NS", 0) / 1e9 + 0.1)
    rows["BlobStore.get_file, first read"] = _times(get, first_read, repeat)
    get()  # verified now, and remembered
    rows["BlobStore.get_file, second read"] = _times(
        get, lambda: out.unlink(missing_ok=True), repeat)
    rows["shutil.copyfile (no hash)"] = _times(
        lambda: shutil.copyfile(src, copy), lambda: copy.unlink(missing_ok=True), repeat)
    reset_store()
    for path in (src, out, copy):
        path.unlink(missing_ok=True)
    return rows


def _tiny_rows(work: Path, calls: int) -> dict[str, list[float]]:
    """Time operations on a 1 KiB file whose blob is already stored, one call at a time."""
    data = os.urandom(1024)
    src = work / "tiny.bin"
    src.write_bytes(data)
    store = BlobStore(work / "tiny-store")
    blob = store.put_file(src)
    dest = work / "tiny-out.bin"

    def each(run: Callable[[], object]) -> list[float]:
        run()  # warm up
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return times

    return {
        "put_file, blob already stored": each(lambda: store.put_file(src)),
        "put_bytes, blob already stored": each(lambda: store.put_bytes(data)),
        "get_file": each(lambda: store.get_file(blob.sha256, dest, size=blob.size)),
    }


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024,
                        help="size of the large file in MiB (default 1024)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="runs per measurement; the median is reported (default 5)")
    parser.add_argument("--tiny-calls", type=int, default=2000,
                        help="calls per 1 KiB measurement (default 2000)")
    args = parser.parse_args()
    size = args.size_mb * MIB

    print(f"{os.cpu_count()} CPUs, load average {_load()} (1, 5, 15 min)")
    with tempfile.TemporaryDirectory(prefix="mlnb-bench-") as tmp:
        work = Path(tmp)
        large = _large_rows(work, size, args.repeat)
        mid = _large_rows(work, 100 * MIB, args.repeat)
        tiny = _tiny_rows(work, args.tiny_calls)

    med = {name: statistics.median(t) for name, t in large.items()}
    t_sha = med["sha256 alone (hashlib.file_digest)"]
    print(f"\n{args.size_mb} MiB file, median (min) of {args.repeat}")
    print(f"{'operation':<38}{'GB/s':>8}{'(max)':>8}{'% of sha256':>14}")
    for name, times in large.items():
        print(f"{name:<38}{size / 1e9 / med[name]:>8.2f}{size / 1e9 / min(times):>8.2f}"
              f"{100 * t_sha / med[name]:>13.0f}%")
    put_get = [med["BlobStore.put_file"], med["BlobStore.get_file, first read"]]
    ok = all(t_sha / t >= TARGET for t in put_get)
    print(f"put and get (first read) at >= {TARGET:.0%} of sha256: {'yes' if ok else 'NO'}")

    print(f"\n100 MiB file, median (min) of {args.repeat}")
    for name, times in mid.items():
        ms = 1e3 * statistics.median(times)
        print(f"{name:<38}{ms:>8.1f} ms ({1e3 * min(times):.1f})")

    print(f"\n1 KiB file, median (min) of {args.tiny_calls} calls")
    for name, times in tiny.items():
        us = 1e6 * statistics.median(times)
        print(f"{name:<38}{us:>8.1f} µs ({1e6 * min(times):.1f})")
    print(f"\nload average {_load()} (1, 5, 15 min)")


if __name__ == "__main__":
    main()

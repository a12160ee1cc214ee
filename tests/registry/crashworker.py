"""Registers versions in a loop until killed; run by test_crash.py as a real process.

Usage: python crashworker.py HOME COUNT.  Version i of model "crash" is a folder of
three files whose bytes are derived from i, and carries metrics {"i": i}, so the
test can check that whatever version exists is whole and correct.
"""

import sys
from pathlib import Path

import mlnb


def content(i: int, k: int) -> bytes:
    """The bytes of file k of version i (tens of kB, different every time)."""
    return (f"version {i} file {k} ".encode() * 997)[: 20_000 + 7_000 * k + i]


def main() -> None:
    home, count = Path(sys.argv[1]), int(sys.argv[2])
    reg = mlnb.Registry(home)
    start = len(reg.versions("crash")) if any(m.name == "crash" for m in reg.models()) else 0
    for i in range(start, start + count):
        work = home / f"work-{i}"
        work.mkdir(exist_ok=True)
        for k in range(3):
            (work / f"part{k}.bin").write_bytes(content(i, k))
        reg.register("crash", work, metrics={"i": i})
        print(f"committed {i}", flush=True)


if __name__ == "__main__":
    main()

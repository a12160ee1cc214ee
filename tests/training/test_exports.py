"""``mlnb.training`` exports a sorted ``__all__`` and imports neither torch nor pandas."""

from __future__ import annotations

import subprocess
import sys


def test_all_is_sorted_and_resolves():
    import mlnb.training as training

    assert training.__all__ == sorted(training.__all__)
    assert {"Run", "resolve_device", "resolve_precision", "train"} <= set(training.__all__)
    for name in training.__all__:
        assert getattr(training, name) is not None


def test_import_does_not_load_torch():
    # PYTHONPATH=src is set for every test by tests/conftest.py.
    code = (
        "import sys, mlnb.training; "
        "heavy = sorted(m for m in ('torch', 'pandas') if m in sys.modules); "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

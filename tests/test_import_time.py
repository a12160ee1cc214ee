"""`import mlnb` stays fast: no heavy library is imported until a function needs it."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["torch", "mlflow", "wandb", "onnx", "onnxruntime", "scipy", "duckdb", "pandas",
         "fsspec", "safetensors", "s3fs", "IPython"]


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return json.loads(out.splitlines()[-1])


def test_import_mlnb_loads_no_heavy_module():
    loaded = _run(
        "import sys, json, mlnb\n"
        f"print(json.dumps({{'loaded': sorted(m for m in {HEAVY!r} if m in sys.modules)}}))"
    )["loaded"]
    assert loaded == []


def test_import_mlnb_takes_under_150_ms():
    times = [
        _run("import time; t = time.perf_counter(); import mlnb; "
             "import json; print(json.dumps({'s': time.perf_counter() - t}))")["s"]
        for _ in range(5)
    ]
    assert sorted(times)[2] < 0.150, times


def test_the_cli_and_refs_stay_light_too():
    loaded = _run(
        "import sys, json, mlnb.refs, mlnb.config, mlnb.cli, mlnb.registry.records\n"
        f"print(json.dumps({{'loaded': sorted(m for m in {HEAVY!r} if m in sys.modules)}}))"
    )["loaded"]
    assert loaded == []

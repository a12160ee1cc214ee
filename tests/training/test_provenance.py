"""The code and environment records of a training run: JSON-safe, side-effect free."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import torch

import mlnb.training.provenance as provenance
from mlnb.training.provenance import code_source, environment


def test_environment_names_the_versions():
    env = environment()
    json.dumps(env)
    assert env["python"] == ".".join(map(str, sys.version_info[:3]))
    assert env["torch"] == torch.__version__ and env["numpy"] == np.__version__
    assert env["mlnb"]
    assert env["cuda_available"] == torch.cuda.is_available()
    assert env["gpu_count"] == (torch.cuda.device_count() if env["cuda_available"] else 0)
    assert {"platform", "cuda", "cudnn", "gpus", "mps_available"} <= env.keys()


def test_environment_creates_no_cuda_context():
    code = ("import torch, mlnb.training.provenance as f; e = f.environment(); "
            "print(torch.cuda.is_initialized(), len(e['gpus'] or []) == e['gpu_count'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_code_source_of_a_given_text_and_truncation(monkeypatch):
    out = code_source("model = Net()\n")
    assert out["source"] == "model = Net()\n" and not out["truncated"]
    assert out["sha256"] == hashlib.sha256(b"model = Net()\n").hexdigest()
    monkeypatch.setattr(provenance, "MAX_SOURCE_CHARS", 10)
    long = "x = 1\n" * 10
    out = code_source(long)
    assert out["truncated"] and out["source"].startswith("x = 1\nx = ")
    assert "10 of 60 characters kept" in out["source"]
    assert out["sha256"] == hashlib.sha256(long.encode()).hexdigest()


def test_code_source_finds_the_running_cell(ip):
    cell = ("from mlnb.training.provenance import code_source\n"
            "found = code_source()  # the cell that trains\n")
    ip.run_cell(cell)
    found = ip.user_ns["found"]
    assert found["source"] == cell
    assert found["sha256"] == hashlib.sha256(cell.encode()).hexdigest()
    assert found["notebook"] is None
    # Also with history stored, as a kernel runs cells, and with a magic in the cell.
    cell2 = "%time found2 = code_source()\n"
    ip.run_cell(cell2, store_history=True)
    assert ip.user_ns["found2"]["source"] == cell2


def test_code_source_hashes_the_notebook_of_the_session(ip, tmp_path, monkeypatch):
    nb = tmp_path / "train.ipynb"
    nb.write_bytes(b'{"cells": [], "nbformat": 4}')
    monkeypatch.setenv("JPY_SESSION_NAME", str(nb))
    ip.run_cell("from mlnb.training.provenance import code_source\nfound = code_source()")
    found = ip.user_ns["found"]
    assert found["notebook"] == str(nb)
    assert found["notebook_sha256"] == hashlib.sha256(nb.read_bytes()).hexdigest()
    # A relative session name resolves against the kernel's working directory.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JPY_SESSION_NAME", "train.ipynb")
    assert code_source("x")["notebook"] == str(nb)
    # ipykernel copies the variable into the namespace as __session__, which wins.
    other = tmp_path / "other.ipynb"
    other.write_bytes(b"{}")
    ip.user_ns["__session__"] = str(other)
    assert code_source("x")["notebook"] == str(other)
    del ip.user_ns["__session__"]
    # A session name that is no file (a console) gives no notebook.
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "console-1"))
    assert code_source("x")["notebook"] is None


def test_code_source_outside_ipython(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(
        "import json, sys\n"
        "from mlnb.training.provenance import code_source\n"
        "out = code_source()\n"
        "print(json.dumps([out['script'], out['script_sha256'], out['source'][:11],\n"
        "                  'IPython' in sys.modules]))\n"
    )
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         check=True)
    path, digest, head, ipython = json.loads(res.stdout)
    assert path == str(script) and head == "import json"
    assert digest == hashlib.sha256(script.read_bytes()).hexdigest()
    assert ipython is False
    res = subprocess.run(
        [sys.executable, "-c", "from mlnb.training.provenance import code_source; "
         "print(code_source())"], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "None"

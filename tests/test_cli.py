"""The `mlnb` command, run as a real subprocess the way a person or a script runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def mlnb(home, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "mlnb.cli", "--home", str(home), *args],
        capture_output=True, text=True, timeout=120,
    )
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def seeded(home, tmp_path):
    f = tmp_path / "w.bin"
    for i in range(3):
        f.write_text(f"weights {i}")
        mlnb(home, "register", "mnist-mlp", str(f), "--metric", f"val_acc=0.9{i}",
             "--param", "lr=0.001", "--tag", "team=vision")
    return home


def test_people_get_aligned_tables(seeded):
    out = mlnb(seeded, "models").stdout.splitlines()
    assert out[0].split() == ["name", "versions", "latest", "aliases", "updated"]
    assert out[2].split()[:3] == ["mnist-mlp", "3", "3"]
    versions = mlnb(seeded, "versions", "mnist-mlp").stdout.splitlines()
    assert [line.split()[0] for line in versions[2:]] == ["1", "2", "3"]
    assert "val_acc" in versions[0]
    show = mlnb(seeded, "show", "mnist-mlp:2").stdout
    assert "mnist-mlp:2" in show and "val_acc = 0.91" in show and "w.bin" in show


def test_promote_rollback_retire_and_audit(seeded):
    mlnb(seeded, "promote", "mnist-mlp:1", "production")
    assert "mnist-mlp:2" in mlnb(seeded, "promote", "mnist-mlp:2", "--reason", "better").stdout
    assert "rolled back to mnist-mlp:1" in mlnb(seeded, "rollback", "mnist-mlp").stdout
    mlnb(seeded, "retire", "mnist-mlp:3")
    audit = mlnb(seeded, "audit", "mnist-mlp").stdout
    assert audit.splitlines()[2].split()[4:6] == ["retire", "mnist-mlp:3"]
    assert "@production 2 -> 1" in audit and "better" in audit


def test_json_output_for_scripts(seeded):
    data = json.loads(mlnb(seeded, "versions", "mnist-mlp", "--json").stdout)
    assert [d["version"] for d in data] == [1, 2, 3]
    assert data[0]["metrics"] == {"val_acc": 0.9} and data[0]["params"] == {"lr": 0.001}
    show = json.loads(mlnb(seeded, "show", "mnist-mlp", "--json").stdout)
    assert show["version"] == 3 and len(show["files"][0]["sha256"]) == 64
    fsck = json.loads(mlnb(seeded, "fsck", "--json").stdout)
    assert fsck["missing"] == [] and fsck["checked"] == 3


def test_export_import_fsck_gc(seeded, tmp_path):
    bundle = tmp_path / "b.tar.gz"
    mlnb(seeded, "export", "mnist-mlp:2", str(bundle))
    assert "as copy:1" in mlnb(seeded, "import", str(bundle), "--name", "copy").stdout
    assert "ok" in mlnb(seeded, "fsck").stdout
    assert "removed 0 blobs" in mlnb(seeded, "gc").stdout


def test_user_errors_are_one_line_on_stderr_with_exit_1(seeded):
    proc = mlnb(seeded, "show", "mnsit-mlp", ok=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip() == (
        "mlnb: NotFound: no model 'mnsit-mlp'; did you mean 'mnist-mlp'?; "
        "list them with `mlnb models` or reg.models()"
    )
    assert "Traceback" not in mlnb(seeded, "promote", "../x", ok=False).stderr
    bad = mlnb(seeded, "register", "m", "x", "--metric", "acc", ok=False)
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr


def test_server_status_and_stop_never_start_a_server(seeded):
    status = json.loads(mlnb(seeded, "server", "--json").stdout)
    assert status["running"] and status["pid"] > 0
    assert "stopped the registry server" in mlnb(seeded, "server", "stop").stdout
    assert json.loads(mlnb(seeded, "server", "status", "--json").stdout)["running"] is False
    assert "no registry server running" in mlnb(seeded, "server", "stop").stdout
    assert json.loads(mlnb(seeded, "versions", "mnist-mlp", "--json").stdout)  # starts again


@pytest.mark.parametrize("command", [
    "models", "versions", "show", "register", "promote", "rollback", "alias", "retire",
    "lineage", "audit", "sql", "fsck", "gc", "export", "import", "server",
])
def test_every_command_has_help(home, command):
    proc = mlnb(home, command, "--help")
    assert proc.stdout.startswith("usage: mlnb") and "--json" in proc.stdout


def test_a_gated_promotion_is_refused_and_forced_with_a_reason(seeded):
    import mlnb as lib
    from mlnb.registry import server

    try:
        with lib.Registry(seeded) as reg:
            reg.set_gates("mnist-mlp", ["accuracy >= 0.9"])
    finally:
        server.stop(str(seeded / "registry.duckdb"), timeout=15, force=True)
    refused = mlnb(seeded, "promote", "mnist-mlp:2", ok=False)
    assert refused.returncode != 0
    assert "mnist-mlp:2 has no evaluation" in refused.stderr
    assert "reason" in mlnb(seeded, "promote", "mnist-mlp:2", "--force", ok=False).stderr
    forced = mlnb(seeded, "promote", "mnist-mlp:2", "--force", "--reason", "drill").stdout
    assert "mnist-mlp@production -> mnist-mlp:2" in forced

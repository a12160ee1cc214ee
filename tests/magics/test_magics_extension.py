"""Loading the extension: fast, light, reloadable, completing names and references."""

from __future__ import annotations

import json
import subprocess
import sys

from mlnb.magics import complete

HEAVY = ["torch", "mlflow", "wandb", "onnx", "onnxruntime", "scipy", "duckdb", "pandas"]


def test_load_ext_is_fast_and_imports_nothing_heavy(tmp_path):
    code = (
        "import time, sys, json\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "t = time.perf_counter(); ip.run_line_magic('load_ext', 'mlnb'); s = time.perf_counter() - t\n"
        f"print(json.dumps({{'s': s, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    )
    runs = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, timeout=120,
                             env={**__import__("os").environ, "IPYTHONDIR": str(tmp_path)})
        runs.append(json.loads(out.stdout.splitlines()[-1]))
    assert all(r["heavy"] == [] for r in runs)
    assert sorted(r["s"] for r in runs)[1] < 0.2


def test_reload_ext_keeps_working(ip):
    ip.run_line_magic("reload_ext", "mlnb")
    assert ip.run_line_magic("mlnb", "models") == []


def test_completion_of_commands_names_versions_and_aliases(ip, tmp_path):
    f = tmp_path / "w"
    for i in range(3):
        f.write_text(str(i))
        ip.run_line_magic("mlnb", f"register mnist-mlp {f}")
    ip.run_line_magic("mlnb", f"register mnist-cnn {f}")
    ip.run_line_magic("mlnb", "promote mnist-mlp:2")
    ip.run_line_magic("mlnb", "alias mnist-mlp:3 champion")

    from IPython.core.completer import provisionalcompleter

    def done(line):
        # what the user sees: the word under the cursor once the completion is applied
        with provisionalcompleter():
            found = list(ip.Completer.completions(line, len(line)))
        return sorted((line[: c.start] + c.text).split()[-1] for c in found)

    assert done("%mlnb pro") == ["promote"]
    assert set(done("%mlnb ")) >= {"models", "show", "promote", "rollback", "sql"}
    assert done("%mlnb show mnist-c") == ["mnist-cnn"]  # and no Jedi noise like "callable"
    assert done("%mlnb show mnist-mlp:1") == ["mnist-mlp:1"]
    assert done("%mlnb show mnist-mlp:") == ["mnist-mlp:1", "mnist-mlp:2", "mnist-mlp:3"]
    assert done("%mlnb show mnist-mlp@") == ["mnist-mlp@champion", "mnist-mlp@production"]
    assert done("%mlnb rollback mn") == ["mnist-cnn", "mnist-mlp"]
    magics = ip.magics_manager.registry["MlnbMagics"]
    assert complete(magics, "%mlnb promote mnist-mlp:1 ") == []  # an alias, not a reference

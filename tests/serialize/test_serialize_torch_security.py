"""Loading a torch artifact never imports a module or calls anything its metadata names.

A malicious artifact controls its metadata: the class's module and qualname,
the init kwargs, the architecture spec.  These tests prove none of them can
make mlnb import a module or call something that is not an nn.Module class.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import types
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
nn = torch.nn

from mlnb.errors import InvalidArgument, NotFound  # noqa: E402
from mlnb.serialize import load, stage  # noqa: E402

SERIALIZE_SRC = Path(__file__).resolve().parents[2] / "src" / "mlnb" / "serialize"


class Net(nn.Module):
    def __init__(self, n: int = 2) -> None:
        super().__init__()
        self.lin = nn.Linear(n, n)


@pytest.fixture
def stored(tmp_path):
    """A stored Net (no spec) as (root, metadata) that tests then tamper with."""
    work, root = tmp_path / "work", tmp_path / "root"
    work.mkdir()
    root.mkdir()
    staged = stage(Net(), work, init_kwargs={"n": 2})
    for rel, src in staged.files:
        shutil.copyfile(src, root / rel)
    metadata = json.loads(json.dumps(staged.metadata))
    assert metadata["arch"] is None
    return root, metadata


@pytest.mark.parametrize("module", ["evil_pkg_that_does_not_exist", "this", "antigravity"])
def test_class_in_unimported_module_is_not_imported(stored, module):
    root, metadata = stored
    assert module not in sys.modules
    metadata["class"] = {"module": module, "qualname": "Net"}
    with pytest.raises(NotFound) as info:
        load("torch", root, metadata)
    message = str(info.value)
    assert f"import the module that defines `{module}.Net` first" in message
    assert "model_class=Net" in message
    assert "into=Net(...)" in message
    assert module not in sys.modules


def test_callable_that_is_not_a_module_class_is_not_called(stored, tmp_path):
    root, metadata = stored
    marker = tmp_path / "pwned"
    metadata["class"] = {"module": "os", "qualname": "mkdir"}
    metadata["init_kwargs"] = {"path": str(marker)}
    with pytest.raises(NotFound, match=r"is not an nn\.Module class"):
        load("torch", root, metadata)
    assert not marker.exists()


def test_module_getattr_is_not_triggered(stored, monkeypatch):
    root, metadata = stored
    calls = []
    lazy = types.ModuleType("mlnb_test_lazy_module")

    def module_getattr(name):
        calls.append(name)
        raise AttributeError(name)

    lazy.__getattr__ = module_getattr  # PEP 562: could import lazily if mlnb used getattr
    monkeypatch.setitem(sys.modules, lazy.__name__, lazy)
    metadata["class"] = {"module": lazy.__name__, "qualname": "Net.Inner"}
    with pytest.raises(NotFound):
        load("torch", root, metadata)
    assert calls == []


def test_notebook_class_hint(stored):
    root, metadata = stored
    metadata["class"] = {"module": "__main__", "qualname": "MyNotebookNet"}
    with pytest.raises(NotFound, match="run the notebook cell that defines MyNotebookNet"):
        load("torch", root, metadata)


def test_class_defined_in_a_function(tmp_path):
    class Local(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(2, 2)

    model = Local()
    staged = stage(model, tmp_path)
    assert "<locals>" in staged.metadata["class"]["qualname"]
    with pytest.raises(NotFound, match="model_class=Local"):
        load("torch", tmp_path, staged.metadata)
    loaded = load("torch", tmp_path, staged.metadata, model_class=Local)
    assert torch.equal(loaded.lin.weight, model.lin.weight)


def test_no_class_recorded(stored):
    root, metadata = stored
    del metadata["class"]
    with pytest.raises(NotFound, match="does not record its model's class"):
        load("torch", root, metadata)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"type": "os.system", "args": {"command": "true"}}, "not one mlnb rebuilds"),
        (
            {"type": "Linear", "args": {"in_features": 2, "out_features": 2, "device": "meta"}},
            "bad arguments for Linear",
        ),
        ({"type": "Sequential", "children": [["a.b", {"type": "ReLU"}]]}, "bad child name"),
        ({"type": "Sequential", "children": "nope"}, "list of children"),
        (
            {"type": "Linear", "args": {"in_features": "x", "out_features": 2}},
            "cannot build Linear",
        ),
        ("Linear", "malformed"),
    ],
)
def test_tampered_spec_is_refused(stored, spec, match):
    root, metadata = stored
    metadata["arch"] = spec
    with pytest.raises(InvalidArgument, match=match):
        load("torch", root, metadata)


def test_deeply_nested_spec_is_refused(stored):
    root, metadata = stored
    spec: dict = {"type": "ReLU"}
    for _ in range(40):
        spec = {"type": "Sequential", "children": [["0", spec]]}
    metadata["arch"] = spec
    with pytest.raises(InvalidArgument, match="nested deeper"):
        load("torch", root, metadata)


def test_source_has_no_unsafe_loading():
    """No torch.load, no dynamic import in mlnb.serialize; one pickle.load, behind trust."""
    for path in SERIALIZE_SRC.glob("*.py"):
        text = path.read_text()
        for pattern in (
            r"torch\.load\b",
            r"\bpickle\.loads?\b",
            "import_module",
            "__import__",
            "weights_only",
            r"(?<![.\w])(eval|exec)\(",
        ):
            hits = [m.group() for m in re.finditer(pattern, text)]
            allowed = ["pickle.load"] if path.name == "pickled.py" else []
            assert hits in ([], allowed), f"{hits} in {path.name}"


def test_class_is_resolved_before_weights_are_read(stored):
    root, metadata = stored
    (root / "model.safetensors").unlink()
    metadata["class"] = {"module": "evil_pkg_that_does_not_exist", "qualname": "Net"}
    with pytest.raises(NotFound, match="not imported"):
        load("torch", root, metadata)

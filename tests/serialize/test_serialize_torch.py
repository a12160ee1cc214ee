"""The torch format: safetensors weights and rebuilding the module, on real torch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
nn = torch.nn

from mlnb.errors import IntegrityError, InvalidArgument, NotFound  # noqa: E402
from mlnb.serialize import load, stage  # noqa: E402
from mlnb.serialize.arch import LAYER_ARGS  # noqa: E402


class Net(nn.Module):
    """A custom model defined in this (imported) test module."""

    def __init__(self, n_in: int, hidden: int, n_out: int, act: str = "relu") -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_in, hidden)
        self.act = nn.ReLU() if act == "relu" else nn.Tanh()
        self.fc2 = nn.Linear(hidden, n_out)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class NoArgs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, x):
        return self.lin(x)


class TiedLM(nn.Module):
    """Output layer shares the embedding matrix."""

    def __init__(self, vocab: int = 10, dim: int = 4) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, ids):
        return self.head(self.emb(ids))


class Sliced(nn.Module):
    """Two parameters that are overlapping views of one buffer."""

    def __init__(self) -> None:
        super().__init__()
        base = torch.arange(10, dtype=torch.float32)
        self.a = nn.Parameter(base[:6])
        self.b = nn.Parameter(base[4:])


class WithShape(nn.Module):
    def __init__(self, shape=(2, 3)) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(*shape))


class MyLinear(nn.Linear):
    """A subclass of a standard layer: may change forward, so it gets no spec."""


def roundtrip(model, tmp_path: Path, *, init_kwargs=None, **load_kwargs):
    """Stage, copy to a fresh root as storage would, JSON-trip the metadata, load."""
    _, metadata, root = stage_to_root(model, tmp_path, init_kwargs=init_kwargs)
    return load("torch", root, metadata, **load_kwargs), metadata


def stage_to_root(model, tmp_path: Path, *, init_kwargs=None):
    work, root = tmp_path / "work", tmp_path / "root"
    work.mkdir()
    root.mkdir()
    staged = stage(model, work, init_kwargs=init_kwargs)
    for rel, src in staged.files:
        shutil.copyfile(src, root / rel)
    return staged, json.loads(json.dumps(staged.metadata)), root


def test_sequential_rebuilt_from_spec(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 3))
    staged, metadata, root = stage_to_root(model, tmp_path)
    assert staged.format == "torch"
    assert [rel for rel, _ in staged.files] == ["model.safetensors"]
    assert metadata["arch"]["type"] == "Sequential"
    assert metadata["parameters"] == 4 * 8 + 8 + 8 * 3 + 3
    assert metadata["dtypes"] == ["float32"]
    assert metadata["class"] == {"module": "torch.nn.modules.container", "qualname": "Sequential"}
    assert set(metadata["versions"]) == {"python", "torch", "safetensors"}
    # The spec alone rebuilds it: the recorded class is not even consulted.
    metadata["class"] = {"module": "evil_pkg_that_does_not_exist", "qualname": "Net"}
    loaded = load("torch", root, metadata)
    assert type(loaded) is nn.Sequential
    assert not loaded.training
    x = torch.randn(5, 4)
    model.eval()
    assert torch.equal(loaded(x), model(x))


def every_layer_models():
    cnn = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4, momentum=None),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.Conv2d(4, 6, (3, 1), stride=(1, 1), padding="same", padding_mode="reflect", groups=2),
        nn.AvgPool2d(2, count_include_pad=False),
        nn.AdaptiveAvgPool2d((1, None)),
        nn.Flatten(),
        nn.Sequential(nn.Identity(), nn.LayerNorm(6, eps=1e-3, bias=False)),
        nn.Linear(6, 5),
        nn.GELU(approximate="tanh"),
        nn.SiLU(),
        nn.LeakyReLU(0.2),
        nn.Tanh(),
        nn.Sigmoid(),
        nn.Softmax(dim=-1),
    )
    seq1d = nn.Sequential(
        nn.Conv1d(2, 4, 3, dilation=2),
        nn.BatchNorm1d(4, affine=False, eps=1e-4),
        nn.Flatten(start_dim=1, end_dim=-1),
    )
    emb = nn.Sequential(
        nn.Embedding(10, 4, padding_idx=0, max_norm=None),
        nn.Flatten(),
        nn.Linear(12, 3),
        nn.Dropout(p=0.3),
        nn.LogSoftmax(dim=1),
    )
    return [
        (cnn, torch.randn(2, 3, 8, 4)),
        (seq1d, torch.randn(2, 2, 9)),
        (emb, torch.tensor([[1, 2, 0], [3, 9, 4]])),
    ]


def test_every_whitelisted_layer_covered():
    used = {type(m).__name__ for model, _ in every_layer_models() for m in model.modules()}
    assert set(LAYER_ARGS) <= used


@pytest.mark.parametrize("index", range(3))
def test_every_whitelisted_layer_round_trips(tmp_path, index):
    torch.manual_seed(index)
    model, x = every_layer_models()[index]
    model.train()
    model(x)  # move BatchNorm running statistics off their initial values
    model.eval()
    loaded, metadata = roundtrip(model, tmp_path)
    assert metadata["arch"] is not None
    assert repr(loaded) == repr(model)
    assert torch.equal(loaded(x), model(x))


@pytest.mark.parametrize(
    "model",
    [
        Net(2, 3, 1),
        MyLinear(2, 2),
        nn.Sequential(nn.Linear(2, 2), NoArgs()),
        nn.ModuleList([nn.Linear(2, 2)]),
    ],
    ids=["custom", "layer-subclass", "custom-inside-sequential", "modulelist"],
)
def test_no_spec_outside_whitelist(tmp_path, model):
    assert stage(model, tmp_path).metadata["arch"] is None


def test_no_spec_for_an_edited_layer(tmp_path):
    lin = nn.Linear(4, 8)
    lin.weight = nn.Parameter(torch.randn(8, 5))  # no longer what Linear(4, 8) builds
    assert stage(nn.Sequential(lin), tmp_path).metadata["arch"] is None


def test_wrappers_are_unwrapped(tmp_path):
    model = Net(2, 3, 1)
    # Stands in for torch.compile's wrapper without importing torch._dynamo (slow, noisy).
    compiled = type("OptimizedModule", (nn.Module,), {})()
    compiled._orig_mod = model
    for wrapped in (compiled, nn.DataParallel(model)):
        work = tmp_path / type(wrapped).__name__
        work.mkdir()
        staged = stage(wrapped, work, init_kwargs={"n_in": 2, "hidden": 3, "n_out": 1})
        assert staged.metadata["class"]["qualname"] == "Net"
        assert load("torch", work, staged.metadata).fc1.weight.equal(model.fc1.weight)


def test_custom_class_rebuilt_because_imported(tmp_path):
    torch.manual_seed(1)
    model = Net(4, 16, 2, act="tanh").eval()
    kwargs = {"n_in": 4, "hidden": 16, "n_out": 2, "act": "tanh"}
    _, metadata, root = stage_to_root(model, tmp_path, init_kwargs=kwargs)
    assert metadata["class"] == {"module": Net.__module__, "qualname": "Net"}
    assert metadata["init_kwargs"] == kwargs
    x = torch.randn(3, 4)
    expected = model(x)
    for loaded in (
        load("torch", root, metadata),
        load("torch", root, metadata, model_class=Net),
        load("torch", root, metadata, into=Net(4, 16, 2, act="tanh")),
    ):
        assert type(loaded) is Net
        assert not loaded.training
        assert isinstance(loaded.act, nn.Tanh)
        assert torch.equal(loaded(x), expected)


def test_into_returns_the_given_instance(tmp_path):
    model = Net(2, 3, 1)
    target = Net(2, 3, 1).train()
    loaded, _ = roundtrip(model, tmp_path, into=target)
    assert loaded is target
    assert not target.training
    assert torch.equal(target.fc1.weight, model.fc1.weight)


def test_class_without_recorded_kwargs(tmp_path):
    model = NoArgs()
    loaded, metadata = roundtrip(model, tmp_path)
    assert metadata["init_kwargs"] is None
    assert torch.equal(loaded.lin.weight, model.lin.weight)


def test_class_needing_unrecorded_kwargs(tmp_path):
    with pytest.raises(InvalidArgument, match=r"none were recorded.*into=Net\(\.\.\.\)"):
        roundtrip(Net(2, 3, 1), tmp_path)


def test_buffers_round_trip(tmp_path):
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU())
    model.train()
    for _ in range(3):
        model(torch.randn(8, 3))
    model.eval()
    loaded, _ = roundtrip(model, tmp_path)
    bn, bn2 = model[1], loaded[1]
    assert torch.equal(bn2.running_mean, bn.running_mean)
    assert torch.equal(bn2.running_var, bn.running_var)
    assert int(bn2.num_batches_tracked) == 3
    x = torch.randn(2, 3)
    assert torch.equal(loaded(x), model(x))


def test_tied_weights_custom_class(tmp_path):
    model = TiedLM()
    loaded, metadata = roundtrip(model, tmp_path)
    assert metadata["tied"] == {"head.weight": "emb.weight"}
    assert loaded.head.weight is loaded.emb.weight
    ids = torch.tensor([[1, 2, 3]])
    assert torch.equal(loaded(ids), model(ids))


def test_tied_weights_are_stored_once(tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    staged = stage(TiedLM(), tmp_path)
    assert set(safetensors_torch.load_file(staged.files[0][1])) == {"emb.weight"}


def test_tied_weights_rebuilt_from_spec(tmp_path):
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10, bias=False))
    model[1].weight = model[0].weight
    loaded, metadata = roundtrip(model, tmp_path)
    assert metadata["arch"] is not None
    assert metadata["tied"] == {"1.weight": "0.weight"}
    assert loaded[1].weight is loaded[0].weight
    ids = torch.tensor([[4, 5]])
    assert torch.equal(loaded(ids), model(ids))


def test_overlapping_views_are_copied_apart(tmp_path):
    model = Sliced()
    loaded, metadata = roundtrip(model, tmp_path)
    assert metadata["tied"] == {}
    assert torch.equal(loaded.a, model.a)
    assert torch.equal(loaded.b, model.b)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_dtype_is_kept(tmp_path, dtype):
    model = nn.Sequential(nn.Linear(3, 2)).to(dtype)
    loaded, metadata = roundtrip(model, tmp_path)
    assert metadata["dtypes"] == [str(dtype).removeprefix("torch.")]
    assert loaded[0].weight.dtype == dtype
    assert torch.equal(loaded[0].weight, model[0].weight)


def test_dtype_kept_for_custom_class(tmp_path):
    model = Net(2, 3, 1).double()
    loaded, _ = roundtrip(
        model, tmp_path, init_kwargs={"n_in": 2, "hidden": 3, "n_out": 1}, model_class=Net
    )
    assert loaded.fc1.weight.dtype == torch.float64


def test_wrong_shapes_give_clear_error(tmp_path):
    _, metadata, root = stage_to_root(nn.Sequential(nn.Linear(4, 8)), tmp_path)
    with pytest.raises(InvalidArgument, match=r"0\.weight stored \(8, 4\) vs model \(16, 4\)"):
        load("torch", root, metadata, into=nn.Sequential(nn.Linear(4, 16)))
    with pytest.raises(InvalidArgument, match=r"not in the model: \['0\.bias'\]"):
        load("torch", root, metadata, into=nn.Sequential(nn.Linear(4, 8, bias=False)))
    with pytest.raises(
        InvalidArgument, match=r"missing from the stored weights: \['1\.bias', '1\.weight'\]"
    ):
        load("torch", root, metadata, into=nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 1)))


def test_wrong_init_kwargs_give_clear_error(tmp_path):
    _, metadata, root = stage_to_root(
        Net(4, 8, 2), tmp_path, init_kwargs={"n_in": 4, "hidden": 8, "n_out": 2}
    )
    metadata["init_kwargs"]["hidden"] = 9
    with pytest.raises(InvalidArgument, match=r"fc1\.weight stored \(8, 4\) vs model \(9, 4\)"):
        load("torch", root, metadata)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"n_in": 2, "hidden": 3, "n_out": 1, "act": nn.ReLU()},
            r"init_kwargs\['act'\] is a torch\.nn",
        ),
        ({"n_in": float("nan"), "hidden": 3, "n_out": 1}, "JSON cannot hold"),
        ({"n_in": 2, "hidden": [3, {1: 2}], "n_out": 1}, "non-string key 1"),
        ({"n_in": 2, "hidden": 3, "n_out": 1, "actt": "relu"}, "do not fit Net"),
        ([("n_in", 2)], "must be a dict"),
    ],
)
def test_non_json_init_kwargs_refused(tmp_path, kwargs, match):
    with pytest.raises(InvalidArgument, match=match):
        stage(Net(2, 3, 1), tmp_path, init_kwargs=kwargs)
    assert list(tmp_path.iterdir()) == []


def test_tuples_in_init_kwargs_become_lists(tmp_path):
    model = WithShape(shape=(2, 3))
    loaded, metadata = roundtrip(model, tmp_path, init_kwargs={"shape": (2, 3)})
    assert metadata["init_kwargs"] == {"shape": [2, 3]}
    assert torch.equal(loaded.w, model.w)


def test_device_checks(tmp_path):
    _, metadata, root = stage_to_root(nn.Sequential(nn.Linear(2, 2)), tmp_path)
    assert next(load("torch", root, metadata, device="cpu").parameters()).device.type == "cpu"
    with pytest.raises(InvalidArgument, match="invalid device 'gpu0'"):
        load("torch", root, metadata, device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidArgument, match="CUDA is not available"):
            load("torch", root, metadata, device="cuda")
    else:
        with pytest.raises(InvalidArgument, match="CUDA device"):
            load("torch", root, metadata, device=f"cuda:{torch.cuda.device_count()}")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_round_trip(tmp_path):
    model = TiedLM().to("cuda")
    loaded, metadata = roundtrip(model, tmp_path, device="cuda")
    assert loaded.emb.weight.device.type == "cuda"
    assert loaded.head.weight is loaded.emb.weight
    assert torch.equal(loaded.emb.weight, model.emb.weight)
    cpu = load("torch", tmp_path / "root", metadata)
    assert cpu.emb.weight.device.type == "cpu"


def test_bad_model_class_and_into(tmp_path):
    _, metadata, root = stage_to_root(nn.Sequential(nn.Linear(2, 2)), tmp_path)
    with pytest.raises(InvalidArgument, match=r"model_class= must be an nn\.Module subclass"):
        load("torch", root, metadata, model_class=dict)
    with pytest.raises(InvalidArgument, match=r"into= must be an nn\.Module instance"):
        load("torch", root, metadata, into=nn.Linear)


def test_unmaterialised_models_refused(tmp_path):
    with torch.device("meta"):
        meta = nn.Linear(2, 2)
    with pytest.raises(InvalidArgument, match="holds no data"):
        stage(meta, tmp_path)
    with pytest.raises(InvalidArgument, match="forward pass"):
        stage(nn.LazyLinear(3), tmp_path)


def test_missing_and_corrupt_weights(tmp_path):
    _, metadata, root = stage_to_root(nn.Sequential(nn.Linear(2, 2)), tmp_path)
    (root / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(IntegrityError, match="cannot read weights"):
        load("torch", root, metadata)
    (root / "model.safetensors").unlink()
    with pytest.raises(NotFound, match=r"model\.safetensors is missing"):
        load("torch", root, metadata)

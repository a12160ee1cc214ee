"""Checkpoints: one safetensors file that gives back the whole training state, or a clear error."""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import re
import time
from collections import OrderedDict

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch

from mlnb.errors import IntegrityError, InvalidArgument, NotFound
from mlnb.training.checkpoint import METADATA_KEY, read_checkpoint, write_checkpoint


class Net(torch.nn.Module):
    """Dropout (draws on the RNG) and batch norm (int64 buffer) make resuming non-trivial."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(4, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
            torch.nn.Dropout(0.3), torch.nn.Linear(16, 3))

    def forward(self, x):
        return self.body(x)


def make_parts(seed):
    torch.manual_seed(seed)
    model = Net()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.9 ** step)
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    return model, opt, sched, scaler


def step(model, opt, sched, scaler):
    """One step whose batch draws on torch, numpy and python random."""
    x = torch.randn(8, 4) + float(np.random.rand()) + random.random()
    y = torch.randint(0, 3, (8,))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    sched.step()


def rng_state():
    return {"torch": torch.get_rng_state(), "cuda": [], "python": random.getstate(),
            "numpy": np.random.get_state()}


def test_training_continues_identically_after_a_round_trip(tmp_path):
    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    model, opt, sched, scaler = make_parts(0)
    for _ in range(3):
        step(model, opt, sched, scaler)
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict(), "scaler": scaler.state_dict(), "rng": rng_state(),
             "loop": {"epoch": 1, "global_step": 3, "batch": 3, "best_epoch": None,
                      "best_value": None, "stale": 0, "rng_epoch_start": rng_state()}}
    write_checkpoint(state, tmp_path / "c.safetensors")
    for _ in range(2):  # the uninterrupted run
        step(model, opt, sched, scaler)

    back = read_checkpoint(tmp_path / "c.safetensors")
    model2, opt2, sched2, scaler2 = make_parts(99)  # fresh objects, other weights
    model2.load_state_dict(back["model"])
    opt2.load_state_dict(back["optimizer"])
    sched2.load_state_dict(back["scheduler"])
    scaler2.load_state_dict(back["scaler"])
    torch.set_rng_state(back["rng"]["torch"])
    random.setstate(back["rng"]["python"])
    np.random.set_state(back["rng"]["numpy"])
    for _ in range(2):
        step(model2, opt2, sched2, scaler2)

    for key, value in model.state_dict().items():
        assert torch.equal(value, model2.state_dict()[key]), key
    for a, b in zip(opt.state_dict()["state"].values(), opt2.state_dict()["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert sched2.get_last_lr() == sched.get_last_lr()
    assert scaler2.state_dict() == scaler.state_dict()
    assert back["loop"] == state["loop"] | {"rng_epoch_start": back["loop"]["rng_epoch_start"]}
    assert back["loop"]["rng_epoch_start"]["python"] == state["loop"]["rng_epoch_start"]["python"]


def test_python_types_come_back_as_they_went_in(tmp_path):
    state = {
        "tuple": (1, (2.5, "x"), [None, True]), "int_keys": {0: "a", 7: {"b": 1}},
        "mixed_keys": {1: 1, "1": 2, (1, 2): 3, None: 4, 2.5: 5, False: 6},
        "floats": [math.inf, -math.inf, 0.1, -0.0, 1e308], "big": 2**70, "neg": -3,
        "$": 1, "$t": {"$": "tuple"}, "$$x": 2, "empty": {}, "nested": [[], (), {}],
        "od": OrderedDict([("b", 1), ("a", 2)]),
        "np_scalars": [np.float32(1.5), np.int64(-4), np.bool_(True), np.uint8(200)],
        "text": "ünïcødé \u2603",
    }
    state["od"]._metadata = {"": {"version": 2}}
    path = tmp_path / "c.safetensors"
    write_checkpoint({**state, "nan": math.nan}, path)
    back = read_checkpoint(path)
    assert math.isnan(back.pop("nan"))
    assert back == state
    assert back["tuple"][1].__class__ is tuple and back["nested"][1] == ()
    assert list(back["int_keys"]) == [0, 7]
    assert type(back["od"]) is OrderedDict and back["od"]._metadata == {"": {"version": 2}}
    assert [type(v) for v in back["np_scalars"]] == [np.float32, np.int64, np.bool_, np.uint8]
    assert str(back["floats"][3]) == "-0.0"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16,
                                   torch.int8, torch.int16, torch.int32, torch.int64,
                                   torch.uint8, torch.uint32, torch.bool, torch.complex64,
                                   torch.float8_e4m3fn])
def test_every_tensor_dtype_round_trips(tmp_path, dtype):
    base = torch.arange(-6, 6, dtype=torch.float32).reshape(3, 4)
    if dtype in (torch.uint8, torch.uint32):
        base = base.abs()
    t = base.to(dtype)
    state = {"t": t, "scalar": t[0, 1].clone(), "empty": t[:0], "strided": t.t()}
    write_checkpoint(state, tmp_path / "c.safetensors")
    back = read_checkpoint(tmp_path / "c.safetensors")
    for key, value in state.items():
        assert back[key].dtype == dtype and back[key].shape == value.shape, key
        assert torch.equal(back[key].reshape(-1).view(torch.uint8),
                           value.reshape(-1).view(torch.uint8))


def test_numpy_arrays_keep_dtype_and_shape(tmp_path):
    state = {"u32": np.arange(624, dtype=np.uint32), "f16": np.ones((2, 3), np.float16),
             "bool": np.array([True, False]), "zero_d": np.array(3.5),
             "big_endian": np.arange(4, dtype=">i4"), "strided": np.arange(12.0).reshape(3, 4).T,
             "c64": np.array([1 + 2j], np.complex64)}
    write_checkpoint(state, tmp_path / "c.safetensors")
    back = read_checkpoint(tmp_path / "c.safetensors")
    for key, value in state.items():
        assert isinstance(back[key], np.ndarray) and back[key].shape == value.shape, key
        assert back[key].dtype == value.dtype.newbyteorder("="), key
        assert np.array_equal(back[key], value), key
    assert back["u32"].flags.writeable


def test_weights_are_plain_safetensors_under_model_slash(tmp_path):
    model, opt, *_ = make_parts(0)
    path = tmp_path / "c.safetensors"
    write_checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict()}, path)
    table = safetensors.torch.load_file(path)
    weights = {k.removeprefix("model/"): v for k, v in table.items() if k.startswith("model/")}
    fresh = Net()
    fresh.load_state_dict(weights)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in model.state_dict().items())
    with safetensors.safe_open(path, "pt") as f:
        assert f.metadata()["format"] == "pt"
        assert json.loads(f.metadata()[METADATA_KEY])["version"] == 1


def test_tied_weights_are_stored_once_and_stay_tied(tmp_path):
    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(10, 4)
            self.out = torch.nn.Linear(4, 10, bias=False)
            self.out.weight = self.emb.weight

    model = Tied()
    buf = torch.arange(10.0)
    state = {"model": model.state_dict(), "halves": [buf[:5], buf[5:]], "view": buf[2:4]}
    path = tmp_path / "c.safetensors"
    write_checkpoint(state, path)
    with safetensors.safe_open(path, "pt") as f:
        names = f.keys()
    assert sorted(k for k in names if k.startswith("model/")) == ["model/emb.weight"]
    back = read_checkpoint(path)
    assert back["model"]["out.weight"] is back["model"]["emb.weight"]
    fresh = Tied()
    fresh.load_state_dict(back["model"])
    assert torch.equal(fresh.out.weight, model.emb.weight) and fresh.out.weight is fresh.emb.weight
    assert [t.tolist() for t in back["halves"]] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert back["view"].tolist() == [2, 3]


class Thing:
    pass


@pytest.mark.parametrize("state, where", [
    ({"scheduler": {"lr_lambdas": [lambda s: s]}}, "scheduler.lr_lambdas[0]"),
    ({"optimizer": {"state": {0: {"fn": Thing()}}}}, "optimizer.state[0].fn"),
    ({"loop": {"tags": {1, 2}}}, "loop.tags"),
    ({"a": {"b c": [b"bytes"]}}, "a['b c'][0]"),
    ({"sparse": torch.eye(3).to_sparse()}, "sparse"),
    ({"c128": torch.zeros(2, dtype=torch.complex128)}, "c128"),
    ({"obj": np.array([object()])}, "obj"),
    ({"k": {Thing(): 1}}, "k"),
])
def test_objects_a_checkpoint_cannot_hold_are_refused_by_place(tmp_path, state, where):
    path = tmp_path / "c.safetensors"
    path.write_bytes(b"old")
    with pytest.raises(InvalidArgument, match="cannot store " + re.escape(where)):
        write_checkpoint(state, path)
    assert path.read_bytes() == b"old"  # the old file stands, and no temporary is left
    assert os.listdir(tmp_path) == ["c.safetensors"]


def test_meta_tensors_are_refused(tmp_path):
    with pytest.raises(InvalidArgument, match="holds no data"):
        write_checkpoint({"model": {"w": torch.empty(2, device="meta")}}, tmp_path / "c")


def _with_metadata(path, text, tensors=None):
    safetensors.torch.save_file(tensors or {"a": torch.zeros(2)}, path,
                                metadata={METADATA_KEY: text})


@pytest.mark.parametrize("make", [
    lambda p: p.write_bytes(b""),
    lambda p: p.write_bytes(os.urandom(300)),
    lambda p: p.write_bytes((2**62).to_bytes(8, "little") + b"{}"),
    lambda p: p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00" + b'{"a": [1, 2, 3]}'),
    lambda p: safetensors.torch.save_file({"a": torch.zeros(2)}, p),
    lambda p: _with_metadata(p, "not json"),
    lambda p: _with_metadata(p, "[1, 2]"),
    lambda p: _with_metadata(p, '{"version": 99, "tree": {}}'),
    lambda p: _with_metadata(p, '{"version": 1, "tree": [1]}'),
    lambda p: _with_metadata(p, '{"version": 1, "tree": {"x": {"$": "tensor", "key": "b"}}}'),
    lambda p: _with_metadata(p, '{"version": 1, "tree": {"x": {"$": "tensor", "key": [1]}}}'),
    lambda p: _with_metadata(p, '{"version": 1, "tree": {"x": {"$": "eval", "code": "1"}}}'),
    lambda p: _with_metadata(p, '{"version": 1, "tree": {"x": {"$": "float", "value": "1"}}}'),
    lambda p: _with_metadata(p, '{"version": 1, "tree": {"x": {"$": "dict", "pairs": [[[1], 2]]}}}'),
    lambda p: _with_metadata(p, '{"version": 1, "tree": {"x": {"$": "scalar", "dtype": "object"}}}'),
    lambda p: _with_metadata(p, '{"version": 1, "tree": {"x": {"$": "ndarray", "key": "a"}}}',
                             {"a": torch.zeros(2, dtype=torch.bfloat16)}),
    lambda p: _with_metadata(p, '{"version": 1, "tree": ' + "[" * 100_000 + "]" * 100_000 + "}"),
], ids=["empty", "random", "huge-header", "bad-entry", "plain-safetensors", "not-json", "a-list",
        "newer-version", "tree-not-dict", "missing-tensor", "bad-key", "unknown-tag", "bad-float",
        "unhashable-key", "bad-scalar", "bf16-as-numpy", "deep-nesting"])
def test_damaged_or_foreign_files_raise_integrity_error(tmp_path, make):
    path = tmp_path / "c.safetensors"
    make(path)
    with pytest.raises(IntegrityError, match="c.safetensors"):
        read_checkpoint(path)


def test_truncated_checkpoint_raises_integrity_error(tmp_path):
    path = tmp_path / "c.safetensors"
    write_checkpoint({"w": torch.ones(1000)}, path)
    data = path.read_bytes()
    for cut in (4, 100, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(IntegrityError):
            read_checkpoint(path)


def test_reading_never_unpickles(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "c.safetensors"
    path.write_bytes(pickle.dumps({"model": Evil()}))
    with pytest.raises(IntegrityError):
        read_checkpoint(path)
    torch.save({"model": Evil()}, tmp_path / "t.pt")
    with pytest.raises(IntegrityError):
        read_checkpoint(tmp_path / "t.pt")
    assert not marker.exists()


def test_missing_file_is_not_found(tmp_path):
    with pytest.raises(NotFound, match="no checkpoint file"):
        read_checkpoint(tmp_path / "nope.safetensors")


def test_write_replaces_atomically_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "c.safetensors"
    write_checkpoint({"v": 1}, path)
    write_checkpoint({"v": 2, "w": torch.ones(3)}, path)
    assert read_checkpoint(path)["v"] == 2
    assert os.listdir(tmp_path) == ["c.safetensors"]


def test_a_million_parameter_checkpoint_writes_fast(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(1000, 1000), torch.nn.Linear(1000, 10))
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 1000)).sum().backward()
    opt.step()
    state = {"model": model.state_dict(), "optimizer": opt.state_dict()}
    path = tmp_path / "c.safetensors"
    write_checkpoint(state, path)  # warm up the page cache and allocator
    start = time.perf_counter()
    write_checkpoint(state, path)
    elapsed = time.perf_counter() - start
    assert path.stat().st_size > 12_000_000
    assert elapsed < 0.5, f"{elapsed * 1000:.0f} ms for a 12 MB checkpoint"

"""Fingerprints of training data: deterministic, JSON-safe, side-effect free."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

import mlnb.training.fingerprint as fp
from mlnb.errors import InvalidArgument
from mlnb.training.batches import tensor_batches
from mlnb.training.fingerprint import data_fingerprint


def _data(n: int = 1000):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 4, 3, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_same_data_same_hash_in_every_container_and_order():
    x, y = _data()
    ds = TensorDataset(x, y)
    prints = [
        data_fingerprint((x, y)),
        data_fingerprint(ds),
        data_fingerprint(DataLoader(ds, batch_size=32, shuffle=True)),
        data_fingerprint(DataLoader(ds, batch_size=64, shuffle=False)),
        data_fingerprint(tensor_batches(ds, batch_size=16, seed=0)),
    ]
    assert len({p["hash"] for p in prints}) == 1
    assert all(len(p["hash"]) == 64 for p in prints)
    for p in prints:
        json.dumps(p, allow_nan=False)
        assert p["examples"] == 1000
        assert p["fields"] == [
            {"name": "0", "shape": [4, 3], "dtype": "float32"},
            {"name": "1", "shape": [], "dtype": "int64"},
        ]
    assert prints[0]["kind"] == "tensors" and prints[1]["kind"] == "dataset"
    assert prints[2]["loader"] == {"batch_size": 32, "drop_last": False, "shuffle": True}
    assert prints[0]["scope"] == "all"  # small: every row is hashed


def test_sampled_rows_are_spaced_and_any_change_there_changes_the_hash(monkeypatch):
    monkeypatch.setattr(fp, "FULL_HASH_BYTES", 0)  # force sampling on small tensors
    x, y = _data(1000)
    base = data_fingerprint((x, y), max_samples=10)
    assert (base["scope"], base["hashed"]) == ("sample", 10)
    # 10 rows spaced over 1000: 0, 111, ..., 999; first and last included.
    assert fp._spaced(1000, 10) == [0, 111, 222, 333, 444, 555, 666, 777, 888, 999]
    for row in (0, 555, 999):
        x2 = x.clone()
        x2[row, 0, 0] += 1
        assert data_fingerprint((x2, y), max_samples=10)["hash"] != base["hash"]
    y2 = y.clone()
    y2[111] += 1
    assert data_fingerprint((x, y2), max_samples=10)["hash"] != base["hash"]
    x3 = x.clone()
    x3[1] += 1  # not a sampled row
    assert data_fingerprint((x3, y), max_samples=10)["hash"] == base["hash"]
    # Same bytes, other dtype or shape: another hash.
    assert data_fingerprint((x.view(1000, 12), y), max_samples=10)["hash"] != base["hash"]
    assert data_fingerprint((x, y.int()), max_samples=10)["hash"] != base["hash"]


def test_small_data_are_hashed_whole():
    x, y = _data(1000)
    base = data_fingerprint((x, y), max_samples=10)
    assert (base["scope"], base["hashed"]) == ("all", 1000)
    x2 = x.clone()
    x2[1] += 1
    assert data_fingerprint((x2, y), max_samples=10)["hash"] != base["hash"]


class Squares(Dataset):
    """A map-style dataset with a random augmentation, as image datasets have."""

    def __init__(self, n: int, offset: float = 0.0):
        self.n, self.offset = n, offset

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        noise = torch.rand(1) + random.random() + float(np.random.rand())
        return {"x": torch.full((2,), i * i + self.offset) + noise, "label": i % 3}


def test_map_style_dataset_sample_with_random_transforms_is_stable():
    a = data_fingerprint(Squares(500), max_samples=20)
    assert data_fingerprint(DataLoader(Squares(500), batch_size=8, shuffle=True),
                            max_samples=20)["hash"] == a["hash"]
    assert (a["kind"], a["examples"], a["hashed"], a["scope"]) == ("dataset", 500, 20, "sample")
    assert a["fields"] == [{"name": "x", "shape": [2], "dtype": "float32"},
                           {"name": "label", "shape": [], "dtype": "int"}]
    assert data_fingerprint(Squares(500, offset=1.0), max_samples=20)["hash"] != a["hash"]


def _rng_states():
    return torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()


def _same(a, b) -> bool:
    return torch.equal(a[0], b[0]) and a[1] == b[1] and np.array_equal(a[2], b[2])


class Stream(IterableDataset):
    def __iter__(self):
        for i in range(100):
            yield torch.rand(3) * 0 + i, i % 2


def test_global_rngs_are_untouched():
    x, y = _data(100)
    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    datas = [
        (x, y),
        DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True),
        Squares(50),
        DataLoader(Squares(50), batch_size=8, shuffle=True),
        DataLoader(Stream(), batch_size=8),
        [(torch.rand(4, 2), torch.zeros(4))],
    ]
    before = _rng_states()
    for data in datas:
        data_fingerprint(data)
        assert _same(_rng_states(), before), data


def test_shuffled_loader_order_is_the_same_with_or_without_a_fingerprint():
    x, y = _data(100)
    dl = DataLoader(TensorDataset(x, y), batch_size=10, shuffle=True)
    torch.manual_seed(5)
    plain = [b[1] for b in dl]
    torch.manual_seed(5)
    data_fingerprint(dl)
    assert all(torch.equal(a, b[1]) for a, b in zip(plain, dl))


def test_iterables_hash_their_first_batches():
    batches = [(torch.full((4, 2), float(i)), torch.zeros(4)) for i in range(10)]
    a = data_fingerprint(batches, max_batches=3)
    assert (a["kind"], a["scope"], a["hashed"]) == ("iterable", "first_batches", 3)
    assert a["fields"][0] == {"name": "0", "shape": [2], "dtype": "float32"}
    changed = list(batches)
    changed[2] = (batches[2][0] + 1, batches[2][1])
    assert data_fingerprint(changed, max_batches=3)["hash"] != a["hash"]
    changed[5] = (batches[5][0] + 1, batches[5][1])  # past the hashed batches
    assert data_fingerprint(changed, max_batches=3)["hash"] == data_fingerprint(
        changed[:3], max_batches=3)["hash"]
    # Stops at max_samples examples too: 4 per batch.
    assert data_fingerprint(batches, max_samples=8, max_batches=10)["hashed"] == 2


def test_iterable_dataset_in_a_loader_hashes_its_first_examples():
    a = data_fingerprint(DataLoader(Stream(), batch_size=8), max_samples=10)
    assert (a["kind"], a["scope"], a["hashed"]) == ("iterable", "first_examples", 10)
    assert a["fields"] == [{"name": "0", "shape": [3], "dtype": "float32"},
                           {"name": "1", "shape": [], "dtype": "int"}]
    assert a["hash"] == data_fingerprint(DataLoader(Stream(), batch_size=8),
                                         max_samples=10)["hash"]


def test_one_shot_iterators_are_not_consumed():
    batches = [(torch.zeros(2, 2), torch.zeros(2))] * 3
    it = iter(batches)
    gen = (b for b in batches)
    assert data_fingerprint(it)["kind"] == "iterator" and data_fingerprint(it)["hash"] is None
    assert data_fingerprint(gen)["hash"] is None
    assert len(list(it)) == 3 and len(list(gen)) == 3


def test_unreadable_data_note_the_error_instead_of_raising():
    class Broken(Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            raise OSError("disk gone")

    out = data_fingerprint(Broken())
    assert out["hash"] is None and out["error"] == "OSError: disk gone"
    assert data_fingerprint([(object(), 1)])["error"].startswith("TypeError: cannot hash")
    with pytest.raises(InvalidArgument, match="max_samples must be a positive integer, not 0"):
        data_fingerprint((torch.zeros(2),), max_samples=0)

"""``tensor_batches``: in-memory tensors cut into batches by indexing, seeded and resumable."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
    WeightedRandomSampler,
    default_collate,
)
from training.toydata import make_blobs, make_net

from mlnb.errors import InvalidArgument
from mlnb.training.batches import TensorBatches, tensor_batches


def _data(n: int = 10):
    x = torch.arange(n * 3, dtype=torch.float32).reshape(n, 3)
    y = torch.arange(n)
    return x, y


def _seen(batches) -> list[int]:
    """The example ids (the y values) in the order the batches give them."""
    return [int(v) for _, yb in batches for v in yb]


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_every_example_once_per_epoch(shuffle, drop_last):
    x, y = _data(10)
    tb = tensor_batches((x, y), batch_size=4, shuffle=shuffle, drop_last=drop_last, seed=0)
    assert len(tb) == (2 if drop_last else 3)
    for epoch in range(3):
        batches = list(tb.epoch(epoch))
        assert len(batches) == len(tb)
        assert [len(yb) for _, yb in batches] == ([4, 4] if drop_last else [4, 4, 2])
        seen = _seen(batches)
        assert len(set(seen)) == len(seen)
        if drop_last:
            assert set(seen) <= set(range(10)) and len(seen) == 8
        else:
            assert sorted(seen) == list(range(10))
        if not shuffle:
            assert seen == list(range(len(seen)))
        for xb, yb in batches:  # inputs and targets stay paired
            assert torch.equal(xb, x[yb])


def test_same_seed_same_orders_and_epochs_differ():
    x, y = _data(64)
    a = tensor_batches((x, y), batch_size=8, shuffle=True, seed=3)
    b = tensor_batches((x, y), batch_size=8, shuffle=True, seed=3)
    c = tensor_batches((x, y), batch_size=8, shuffle=True, seed=4)
    assert _seen(a.epoch(1)) == _seen(b.epoch(1))
    assert _seen(a.epoch(1)) != _seen(a.epoch(2))
    assert _seen(a.epoch(1)) != _seen(c.epoch(1))
    assert _seen(a.epoch(1)) != list(range(64))


def test_order_ignores_global_rng_consumed_during_training():
    x, y = _data(64)
    tb = tensor_batches((x, y), batch_size=8, shuffle=True, seed=0)
    first = _seen(tb.epoch(2))
    torch.manual_seed(123)
    torch.rand(1000)
    assert _seen(tb.epoch(2)) == first


def test_default_seed_comes_from_global_rng():
    x, y = _data(64)
    torch.manual_seed(7)
    a = tensor_batches((x, y), batch_size=8, shuffle=True)
    torch.manual_seed(7)
    b = tensor_batches((x, y), batch_size=8, shuffle=True)
    assert a.seed == b.seed
    assert _seen(a.epoch(0)) == _seen(b.epoch(0))
    # The stored seed is enough to rebuild the same orders later (a resume).
    again = tensor_batches((x, y), batch_size=8, shuffle=True, seed=a.seed)
    assert _seen(again.epoch(5)) == _seen(a.epoch(5))
    # Without shuffling the global RNG is not read at all.
    state = torch.get_rng_state()
    tensor_batches((x, y), batch_size=8, shuffle=False)
    assert torch.equal(torch.get_rng_state(), state)


def test_resume_from_batch_k_gives_the_rest_of_the_same_order():
    x, y = _data(50)
    tb = tensor_batches((x, y), batch_size=8, shuffle=True, seed=1)
    full = [yb for _, yb in tb.epoch(4)]
    rest = [yb for _, yb in tb.epoch(4, start=3)]
    assert len(rest) == len(full) - 3
    assert all(torch.equal(a, b) for a, b in zip(full[3:], rest))
    assert list(tb.epoch(4, start=len(tb))) == []


def test_batches_are_copies_not_views_of_the_data():
    x, y = _data(10)
    for shuffle in (False, True):
        tb = tensor_batches((x, y), batch_size=4, shuffle=shuffle, seed=0)
        for xb, _ in tb.epoch(0):
            xb.zero_()
    assert torch.equal(x, _data(10)[0])


def test_tensor_dataset_and_extra_fields():
    x, y = _data(10)
    w = torch.ones(10, dtype=torch.float64)
    tb = tensor_batches(TensorDataset(x, y, w), batch_size=3, shuffle=False, seed=0)
    batch = next(tb.epoch(0))
    assert isinstance(batch, list) and len(batch) == 3
    assert [t.dtype for t in batch] == [torch.float32, torch.int64, torch.float64]
    assert isinstance(next(tensor_batches((x, y), batch_size=3, seed=0).epoch(0)), tuple)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_dataloader_settings_are_copied_and_batches_match(shuffle, drop_last):
    x, y = _data(10)
    dl = DataLoader(TensorDataset(x, y), batch_size=4, shuffle=shuffle, drop_last=drop_last)
    # The arguments are ignored in favour of the loader's own settings.
    tb = tensor_batches(dl, batch_size=99, shuffle=not shuffle, drop_last=not drop_last, seed=0)
    assert (tb.batch_size, tb.shuffle, tb.drop_last) == (4, shuffle, drop_last)
    assert len(tb) == len(dl)
    ours, theirs = list(tb.epoch(0)), list(dl)
    for a, b in zip(ours, theirs):
        assert type(a) is type(b) is list
        assert [(t.dtype, t.shape) for t in a] == [(t.dtype, t.shape) for t in b]
    if not shuffle:
        assert all(torch.equal(s, t) for a, b in zip(ours, theirs) for s, t in zip(a, b))


def test_dataloader_generator_seeds_the_order():
    x, y = _data(64)

    def make():
        g = torch.Generator().manual_seed(5)
        return tensor_batches(DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True,
                                         generator=g))

    assert make().seed == make().seed


def test_loaders_that_are_not_plain_rows_are_left_alone():
    x, y = _data(10)
    ds = TensorDataset(x, y)

    class Augmented(TensorDataset):
        def __getitem__(self, i):
            a, b = super().__getitem__(i)
            return a * 2, b

    class MyLoader(DataLoader):
        pass

    not_plain = [
        DataLoader(ds, batch_size=4, collate_fn=lambda b: default_collate(b)),
        DataLoader(ds, batch_size=4, sampler=WeightedRandomSampler([1.0] * 10, 10)),
        DataLoader(ds, batch_size=4, sampler=RandomSampler(ds, replacement=True)),
        DataLoader(ds, batch_size=4, sampler=RandomSampler(ds, num_samples=5)),
        DataLoader(ds, batch_sampler=BatchSampler(SequentialSampler(ds), 4, False)),
        DataLoader(ds, batch_size=4, worker_init_fn=lambda i: None),
        DataLoader(ds, batch_size=None),
        DataLoader(Augmented(x, y), batch_size=4),
        MyLoader(ds, batch_size=4),
        [(x[:5], y[:5]), (x[5:], y[5:])],  # a list of ready-made batches
        iter([(x, y)]),
    ]
    for data in not_plain:
        assert tensor_batches(data, batch_size=4, seed=0) is None, data
    assert isinstance(tensor_batches(DataLoader(ds, batch_size=4)), TensorBatches)


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        ((torch.zeros(4, 2), torch.zeros(5)), {"batch_size": 2}, r"different first dimensions \[4, 5\]"),
        ((torch.zeros(4, 2), [0, 1, 0, 1]), {"batch_size": 2}, "data item 1 is a list"),
        ((torch.zeros(0, 2), torch.zeros(0)), {"batch_size": 2}, "0 examples"),
        ((torch.zeros(4, 2), torch.zeros(4)), {}, r"batch_size is needed .*batch_size=64"),
        (TensorDataset(torch.zeros(4, 2)), {}, "batch_size is needed for a TensorDataset"),
        ((torch.zeros(4, 2), torch.zeros(4)), {"batch_size": 0}, "positive integer, not 0"),
        ((torch.zeros(4, 2), torch.zeros(4)), {"batch_size": 2.0}, "positive integer, not 2.0"),
        ((torch.zeros(4, 2), torch.tensor(1.0)), {"batch_size": 2}, "0-d tensor"),
        ((torch.zeros(4, 2), torch.zeros(4)), {"batch_size": 2, "seed": "x"}, "seed must be"),
    ],
)
def test_bad_input_is_one_clear_error(data, kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        tensor_batches(data, **kwargs)


def test_numpy_arrays_get_a_hint():
    np = pytest.importorskip("numpy")
    with pytest.raises(InvalidArgument, match="ndarray.*torch.from_numpy"):
        tensor_batches((np.zeros((4, 2)), np.zeros(4)), batch_size=2)


def test_bad_epoch_or_start():
    tb = tensor_batches(_data(10), batch_size=4, seed=0)
    with pytest.raises(InvalidArgument, match="from 0 to 3, not 4"):
        tb.epoch(0, start=4)
    with pytest.raises(InvalidArgument, match="epoch must be an integer"):
        tb.epoch(1.5)


def test_cpu_training_indexes_on_the_cpu_without_pinning():
    tb = tensor_batches(_data(10), batch_size=4, device="cpu", seed=0)
    assert (tb.device.type, tb.pinned) == ("cpu", False)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
def test_cuda_data_that_fit_move_to_the_device_once():
    x, y = _data(100)
    tb = tensor_batches((x, y), batch_size=16, shuffle=True, device="cuda", seed=0)
    assert (tb.device.type, tb.pinned) == ("cuda", False)
    xb, yb = next(tb.epoch(0))
    assert xb.is_cuda and yb.is_cuda
    assert _seen(tb.epoch(1)) == _seen(tensor_batches((x, y), batch_size=16, seed=0).epoch(1))


@cuda
def test_cuda_data_that_do_not_fit_are_cut_into_pinned_memory(monkeypatch):
    import mlnb.training.batches as batches

    monkeypatch.setattr(batches, "DEVICE_FRACTION", 0.0)
    for shuffle in (False, True):
        tb = tensor_batches(_data(100), batch_size=16, shuffle=shuffle, device="cuda", seed=0)
        assert (tb.device.type, tb.pinned) == ("cpu", True)
        xb, yb = next(tb.epoch(0))
        assert xb.is_pinned() and yb.is_pinned() and not xb.is_cuda


def _train(batches_of_epoch, epochs: int = 5) -> float:
    """A tiny hand loop over the toy blobs; the accuracy on fresh blobs."""
    model = make_net(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(epochs):
        for xb, yb in batches_of_epoch(epoch):
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    vx, vy = make_blobs(512, seed=2)
    with torch.no_grad():
        return (model(vx).argmax(1) == vy).float().mean().item()


def test_same_accuracy_as_the_dataloader():
    x, y = make_blobs(512, seed=0)
    torch.manual_seed(0)
    dl = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    tb = tensor_batches(dl, device="cpu")
    slow = _train(lambda epoch: dl)
    fast = _train(tb.epoch)
    assert slow > 0.95 and fast > 0.95
    assert abs(fast - slow) < 0.02

"""``mlnb.train`` against a plain hand-written loop: same model, same data, one process.

Two comparisons, each printed as samples/s side by side with the ratio:

1. **Loop overhead**: the same list of ready-made batches (so data loading costs
   nothing and only the loops differ), trained by

   * a plain loop: ``zero_grad``, forward, loss, ``backward``, ``step``, and the
     epoch's loss summed on the device (the best a hand-written loop does);
   * ``mlnb.train`` with its progress reporter on (the text bar, drawn into a
     buffer) and a checkpoint written to the artifact store after every epoch
     (the default ``keep="best:1,last:1"``).

   The overhead is ``1 - mlnb / plain``; the goal is at most 3%.

2. **In-memory data**: tensors ``(X, y)`` in memory, shuffled each epoch, trained by

   * the plain loop over ``DataLoader(TensorDataset(X, y), shuffle=True)``, the
     usual notebook code;
   * ``mlnb.train(model, (X, y), batch_size=...)``, which batches by indexing the
     whole tensors (no per-sample ``__getitem__`` and collate).

Rounds are noisy on a shared machine (other processes take the cores), so
each row shows the best round of each side, which is what the loop itself
costs, and the median round.  The two sides alternate rounds of three epochs (plain, mlnb, mlnb, plain, ...),
each ``mlnb.train`` call a whole run with its set-up, on copies of one model, so a burst of load from other processes falls on
both, and the median round is reported.  ``--device cuda --model cnn`` measures
the GPU paths (a small CNN on 3x32x32 images) where a GPU is at hand.

Run: ``PYTHONPATH=src python benchmarks/train_overhead.py [--quick] [--device cpu|cuda]
[--model mlp|cnn] [--threads N]``
"""

from __future__ import annotations

import argparse
import copy
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def build(kind: str, torch, features: int):
    torch.manual_seed(0)
    nn = torch.nn
    if kind == "mlp":
        return nn.Sequential(nn.Linear(features, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                             nn.Linear(256, 10))
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def make_data(kind: str, torch, n: int):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 32, generator=g) if kind == "mlp" else torch.randn(n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return x, y


def sync(torch, device):
    if device.type == "cuda":
        torch.cuda.synchronize()


EPOCHS = 3  # per round: each mlnb.train call is a whole run, set-up included


def plain_run(torch, model, opt, batches, device) -> float:
    """Hand-written epochs, each loss summed on the device; returns samples/s."""
    f = torch.nn.functional
    model.train()
    sync(torch, device)
    t0 = time.perf_counter()
    n = 0
    for _ in range(EPOCHS):
        total = torch.zeros((), device=device)
        for x, y in batches:
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            loss = f.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            total += loss.detach() * y.shape[0]
            n += y.shape[0]
        total.item()
    sync(torch, device)
    return n / (time.perf_counter() - t0)


def mlnb_run(torch, model, opt, data, device, n, *, batch_size=None) -> float:
    """One ``mlnb.train`` call with progress on and a checkpoint each epoch; samples/s."""
    import mlnb
    from mlnb.training.progress import TextProgress

    sync(torch, device)
    t0 = time.perf_counter()
    run = mlnb.train(model, data, loss_fn=torch.nn.functional.cross_entropy, optimizer=opt,
                     epochs=EPOCHS, device=str(device), precision="fp32", batch_size=batch_size,
                     progress=TextProgress(io.StringIO()), name="bench")
    sync(torch, device)
    elapsed = time.perf_counter() - t0
    assert run.status == "finished" and len(run.history) == EPOCHS
    return n * EPOCHS / elapsed


def rounds(pairs: int, plain, ours) -> tuple[list[float], list[float]]:
    a, b = [], []
    for i in range(pairs):
        if i % 2:
            b.append(ours())
            a.append(plain())
        else:
            a.append(plain())
            b.append(ours())
    return a, b


def row(label: str, plain: list[float], ours: list[float], goal: str) -> None:
    """The best round of each side (what the loops cost when nothing else interferes),
    then the median round."""
    for kind, pick in (("best", max), ("median", statistics.median)):
        p, o = pick(plain), pick(ours)
        print(f"{label + ', ' + kind:<52} {p:>12,.0f} {o:>12,.0f} {o / p:>7.3f}  {goal}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    ap.add_argument("--examples", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="fewer examples and rounds")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    n = args.examples or (
        (16_384 if args.quick else 65_536) if args.model == "mlp"
        else (4_096 if args.quick else 16_384))
    pairs = 4 if args.quick else args.rounds
    b = args.batch_size
    x, y = make_data(args.model, torch, n)
    base = build(args.model, torch, 32).to(device)

    with tempfile.TemporaryDirectory(prefix="mlnb-bench-") as home:
        os.environ["MLNB_HOME"] = home
        gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
        print(f"model {args.model}, {n:,} examples, batch {b}, device {device} (GPU: {gpu}), "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"{pairs} rounds each side, median")
        print(f"{'samples/s':<52} {'plain':>12} {'mlnb':>12} {'ratio':>7}")

        # 1. the same ready-made batches
        batches = [(x[i:i + b], y[i:i + b]) for i in range(0, n, b)]
        m1, m2 = copy.deepcopy(base), copy.deepcopy(base)
        o1 = torch.optim.SGD(m1.parameters(), lr=0.01, momentum=0.9)
        o2 = torch.optim.SGD(m2.parameters(), lr=0.01, momentum=0.9)
        plain_run(torch, m1, o1, batches, device)  # warm-up
        mlnb_run(torch, m2, o2, batches, device, n)
        plain, ours = rounds(pairs, lambda: plain_run(torch, m1, o1, batches, device),
                             lambda: mlnb_run(torch, m2, o2, batches, device, n))
        row("same batches (progress, ckpt each epoch)", plain, ours, "goal: >= 0.97")

        # 2. in-memory tensors: DataLoader vs indexed batches
        from torch.utils.data import DataLoader, TensorDataset

        loader = DataLoader(TensorDataset(x, y), batch_size=b, shuffle=True)
        m1, m2 = copy.deepcopy(base), copy.deepcopy(base)
        o1 = torch.optim.SGD(m1.parameters(), lr=0.01, momentum=0.9)
        o2 = torch.optim.SGD(m2.parameters(), lr=0.01, momentum=0.9)
        plain_run(torch, m1, o1, loader, device)
        mlnb_run(torch, m2, o2, (x, y), device, n, batch_size=b)
        plain, ours = rounds(
            pairs, lambda: plain_run(torch, m1, o1, loader, device),
            lambda: mlnb_run(torch, m2, o2, (x, y), device, n, batch_size=b))
        row("in-memory (X, y): DataLoader vs indexing", plain, ours, "mlnb faster: > 1")


if __name__ == "__main__":
    main()

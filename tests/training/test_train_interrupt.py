"""A KeyboardInterrupt during training ends the run cleanly and registers nothing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from training.toydata import loader, make_blobs, make_net


class InterruptAt:
    """An iterable of batches that raises KeyboardInterrupt at global batch *k* (1-based)."""

    def __init__(self, batches, k):
        self.batches, self.k, self.seen = list(batches), k, 0

    def __iter__(self):
        for batch in self.batches:
            self.seen += 1
            if self.seen == self.k:
                raise KeyboardInterrupt
            yield batch


def test_interrupt_mid_epoch_keeps_history_and_registers_nothing(memreg, capsys):
    from mlnb.training import train

    x, y = make_blobs(64, seed=0)
    batches = InterruptAt(loader(x, y, 16), k=7)  # 4 batches an epoch: dies in epoch 2
    model = make_net()
    model.eval()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    run = train(model, batches, val_loader=loader(x, y, 64), loss_fn=F.cross_entropy,
                optimizer=opt, epochs=5, log_every=2, register="toy", registry=memreg)
    assert run.status == "interrupted"
    assert run.history["epoch"].tolist() == [1]
    assert run.steps["step"].tolist() == [2, 4, 6]
    assert run.best_epoch == 1
    assert run.version is None
    assert memreg.models() == []
    # no half-accumulated gradient left behind, and the model's mode is restored
    assert all(p.grad is None for p in model.parameters())
    assert not model.training
    assert "interrupted" in repr(run)
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("interrupted")

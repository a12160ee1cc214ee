"""Stop, interrupt, kill, resume: a resumed run ends with the weights of an unbroken one.

Every run here shuffles with a DataLoader that draws its order from the global
torch generator and trains a model with dropout, so a resume that put back any
generator in the wrong place would end with different weights.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from training.toydata import loader, make_blobs, same_weights, weights

from mlnb.training import train

EPOCHS = 4


def make_dropout_net(seed: int = 0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return torch.nn.Sequential(
            torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(16, 2)
        )


def setup(train_data=None):
    """A fresh model and optimizer, with shuffled training data (4 batches an epoch)."""
    model = make_dropout_net()
    opt = torch.optim.AdamW(model.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    x, y = make_blobs(64, seed=0)
    vx, vy = make_blobs(32, seed=1)
    return model, opt, sched, train_data or loader(x, y, 16, shuffle=True), loader(vx, vy, 32)


def fit(model, opt, sched, train_data, val_data, **kw):
    """Train with the DataLoader as it is: its order comes from the global generator."""
    kw.setdefault("epochs", EPOCHS)
    kw.setdefault("fast_data", False)
    return train(model, train_data, val_loader=val_data, loss_fn=F.cross_entropy,
                 optimizer=opt, scheduler=sched, seed=0, device="cpu", progress=False,
                 log_every=3, name="resumable", **kw)


@pytest.fixture(scope="module")
def unbroken():
    """The weights and history of the run that nothing stopped."""
    model, opt, sched, tr, va = setup()
    run = fit(model, opt, sched, tr, va)
    assert run.status == "finished"
    return weights(model), run


class Batches:
    """Iterates a DataLoader afresh each epoch and does *action* before global batch *k*."""

    def __init__(self, data, k, action):
        self.data, self.k, self.action, self.seen = data, k, action, 0

    def __len__(self):
        return len(self.data)

    def __iter__(self):
        for batch in self.data:
            self.seen += 1
            if self.seen == self.k:
                self.action()
            yield batch


def raise_interrupt():
    raise KeyboardInterrupt


def sigint():
    os.kill(os.getpid(), signal.SIGINT)


def test_keyboard_interrupt_between_steps_keeps_a_checkpoint_and_resumes_exactly(unbroken):
    model, opt, sched, tr, va = setup()
    run = fit(model, opt, sched, Batches(tr, 7, raise_interrupt), va)
    assert run.status == "interrupted"
    assert run.history["epoch"].tolist() == [1]
    last = run.checkpoints[-1]
    assert (last.kind, last.epoch, last.step, last.batch) == ("stop", 2, 6, 2)
    assert all(p.grad is None for p in model.parameters())

    model, opt, sched, tr, va = setup()
    resumed = fit(model, opt, sched, tr, va, resume=True)
    assert resumed.resumed and resumed.run_id == run.run_id
    assert resumed.status == "finished"
    assert resumed.history["epoch"].tolist() == [1, 2, 3, 4]
    assert same_weights(weights(model), unbroken[0])
    ref = unbroken[1].history
    assert resumed.history["val_loss"].tolist() == pytest.approx(ref["val_loss"].tolist())
    # the interrupted epoch's loss adds up the batches before and after the interrupt
    assert resumed.history["train_loss"].tolist() == pytest.approx(ref["train_loss"].tolist())
    assert resumed.best_epoch == unbroken[1].best_epoch


def test_first_sigint_stops_after_the_step_and_resume_reaches_the_same_weights(unbroken):
    model, opt, sched, tr, va = setup()
    run = fit(model, opt, sched, Batches(tr, 10, sigint), va)
    # batch 10 is fetched, trained, then the run stops: epoch 3, batch 2 of 4
    assert run.status == "stopped"
    assert "interrupt again" in run.message
    assert run.checkpoints[-1].kind == "stop"
    assert (run.checkpoints[-1].epoch, run.checkpoints[-1].step) == (3, 10)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    model, opt, sched, tr, va = setup()
    resumed = fit(model, opt, sched, tr, va, resume=True)
    assert resumed.status == "finished"
    assert same_weights(weights(model), unbroken[0])


def test_in_memory_tensors_resume_to_the_same_weights():
    """The indexed batches of in-memory tensors: a stop mid-epoch resumes the same order."""
    x, y = make_blobs(64, seed=0)
    vx, vy = make_blobs(32, seed=1)

    def run(stop_at=None, **kw):
        calls = {"n": 0}

        def loss(out, target):
            calls["n"] += torch.is_grad_enabled()  # training batches only
            if calls["n"] == stop_at:
                sigint()
            return F.cross_entropy(out, target)

        model, opt, sched, _, _ = setup()
        result = train(model, (x, y), val_loader=(vx, vy), batch_size=16, loss_fn=loss,
                       optimizer=opt, scheduler=sched, epochs=EPOCHS, device="cpu",
                       seed=0, progress=False, name="tensors", **kw)
        return result, weights(model)

    ref, expected = run()
    stopped, _ = run(stop_at=7)
    assert stopped.status == "stopped" and stopped.checkpoints[-1].step == 7
    resumed, got = run(resume=True)
    assert resumed.resumed and resumed.status == "finished"
    assert same_weights(got, expected)
    assert resumed.history["train_loss"].tolist() == pytest.approx(ref.history["train_loss"].tolist())
    assert resumed.history["val_loss"].tolist() == pytest.approx(ref.history["val_loss"].tolist())


def test_second_sigint_interrupts_at_once():
    def twice():
        sigint()
        sigint()

    model, opt, sched, tr, va = setup()
    run = fit(model, opt, sched, Batches(tr, 5, twice), va)
    assert run.status == "interrupted"
    assert run.history["epoch"].tolist() == [1]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_resume_at_an_epoch_boundary(unbroken):
    model, opt, sched, tr, va = setup()
    first = fit(model, opt, sched, tr, va, epochs=EPOCHS, early_stop=None)
    assert first.status == "finished"
    # A finished run is never resumed: resume=True with nothing to resume starts afresh.
    model, opt, sched, tr, va = setup()
    again = fit(model, opt, sched, tr, va, resume=True)
    assert not again.resumed and again.run_id != first.run_id
    assert same_weights(weights(model), unbroken[0])


def test_rerunning_a_cell_starts_a_new_run_and_leaves_the_old_one_alone(tmp_path):
    from mlnb.training.runs import RunStore

    model, opt, sched, tr, va = setup()
    a = fit(model, opt, sched, Batches(tr, 6, raise_interrupt), va)
    store = RunStore.default()
    before = {r.run_id: r for r in store.runs("resumable")}
    model, opt, sched, tr, va = setup()
    b = fit(model, opt, sched, tr, va, epochs=1)
    assert b.run_id != a.run_id and not b.resumed
    after = {r.run_id: r for r in store.runs("resumable")}
    assert after[a.run_id].status == "interrupted"
    assert after[a.run_id].checkpoints == before[a.run_id].checkpoints
    assert after[b.run_id].status == "finished"


def test_resume_skips_a_run_of_another_model():
    model, opt, sched, tr, va = setup()
    fit(model, opt, sched, Batches(tr, 6, raise_interrupt), va)
    wide = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    opt = torch.optim.AdamW(wide.parameters(), lr=0.05)
    run = fit(wide, opt, None, tr, va, epochs=1, resume=True)
    assert not run.resumed and run.status == "finished"


def test_diverged_loss_stops_with_the_last_good_weights_and_registers_nothing(memreg):
    from mlnb.training import TrainingWarning

    calls = {"n": 0}

    def exploding(out, target):
        calls["n"] += torch.is_grad_enabled()  # training batches only
        loss = F.cross_entropy(out, target)
        return loss * float("nan") if calls["n"] > 9 else loss  # epoch 3, batch 2

    model, opt, sched, tr, va = setup()
    with pytest.warns(TrainingWarning, match=r"training loss became nan by step 12 \(epoch 3\)"):
        run = train(model, tr, val_loader=va, loss_fn=exploding, optimizer=opt, epochs=5,
                    seed=0, device="cpu", progress=False, log_every=3, name="boom",
                    register="boom", registry=memreg)
    assert run.status == "diverged"
    assert "last good checkpoint (epoch 2" in run.message
    assert run.history["epoch"].tolist() == [1, 2]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    from mlnb.training.runs import RunStore

    handle = RunStore.from_registry(memreg).open("boom", run.run_id)
    assert same_weights(weights(model), handle.load(handle.last_checkpoint())["model"])
    assert run.version is None and memreg.models() == []


KILLED = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    import torch
    torch.set_num_threads(1)
    from training.test_train_resume import setup, fit, Batches

    def hang():
        print("checkpointed", flush=True)
        time.sleep(600)

    model, opt, sched, tr, va = setup()
    fit(model, opt, sched, Batches(tr, 9, hang), va)   # hangs at the start of epoch 3
""")


def test_resume_after_the_kernel_was_killed(tmp_path):
    """A process killed with SIGKILL (a kernel restart) resumes from its last epoch checkpoint."""
    torch.set_num_threads(1)
    try:
        model, opt, sched, tr, va = setup()
        ref = fit(model, opt, sched, tr, va)
        expected = weights(model)

        script = tmp_path / "victim.py"
        script.write_text(KILLED.format(tests=str(Path(__file__).parents[1])))
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                                env=os.environ.copy())
        try:
            assert proc.stdout.readline().strip() == "checkpointed"
            proc.kill()
        finally:
            proc.wait(timeout=30)

        from mlnb.training.runs import RunStore

        killed = RunStore.default().runs("resumable")[0]
        assert killed.status == "running"  # what a killed process leaves behind
        assert killed.run_id != ref.run_id

        model, opt, sched, tr, va = setup()
        resumed = fit(model, opt, sched, tr, va, resume=True)
        assert resumed.resumed and resumed.run_id == killed.run_id
        assert resumed.history["epoch"].tolist() == [1, 2, 3, 4]
        assert same_weights(weights(model), expected)
    finally:
        torch.set_num_threads(os.cpu_count() or 1)


def test_a_run_still_training_in_another_kernel_is_not_resumed(tmp_path):
    from mlnb.errors import Conflict

    script = tmp_path / "busy.py"
    script.write_text(KILLED.format(tests=str(Path(__file__).parents[1])))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "checkpointed"
        model, opt, sched, tr, va = setup()
        with pytest.raises(Conflict, match=rf"still training in process {proc.pid}"):
            fit(model, opt, sched, tr, va, resume=True)
    finally:
        proc.kill()
        proc.wait(timeout=30)

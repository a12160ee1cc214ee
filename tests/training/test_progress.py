"""The text progress bar, and which reporter ``train(progress=...)`` gets."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest

from mlnb.errors import InvalidArgument
from mlnb.training.events import EpochEnd, Progress, RunEnd, RunStart, StepLog
from mlnb.training.progress import TextProgress, is_kernel, make_reporter

COLUMNS = ("epoch", "train_loss", "val_loss", "lr", "epoch_time_s", "samples_per_s")


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def drive(reporter, epochs=3, spe=4, stop_at=None):
    """Send a run's events: per batch a progress, per 2 batches a step, per epoch an epoch."""
    reporter.start(RunStart(name="toy", run_id="r", epochs=epochs, start_epoch=1,
                            steps_per_epoch=spe, monitor="val_loss", mode="min", columns=COLUMNS,
                            device="cpu", precision="fp32", params={}))
    step, t, status = 0, 0.0, "finished"
    for epoch in range(1, epochs + 1):
        for batch in range(1, spe + 1):
            step += 1
            t += 0.5
            if step % 2 == 0:
                reporter.step(StepLog(step, epoch, 1.0 / step))
            reporter.progress(Progress(
                epoch=epoch, epochs=epochs, batch=batch, steps_per_epoch=spe, global_step=step,
                samples=batch * 8, elapsed_s=t, epoch_elapsed_s=batch * 0.5, loss=1.0 / step,
                best_value=None))
            if (epoch, batch) == stop_at:
                status = "stopped"
                break
        if status == "stopped":
            break
        row = {"epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": 0.9 / epoch, "lr": 0.1,
               "epoch_time_s": 2.0, "samples_per_s": 16.0}
        reporter.epoch(EpochEnd(row=row, epochs=epochs, monitor="val_loss", best_epoch=epoch,
                                best_value=0.9 / epoch))
    run = SimpleNamespace(status=status, best_epoch=1, best_value=0.9, elapsed_s=t, message="",
                          checkpoints=("c",), version=None)
    reporter.end(RunEnd(run=run))


def test_a_log_gets_one_line_per_epoch_and_a_final_line():
    out = io.StringIO()
    drive(TextProgress(out, interval=0))
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [line.split()[:2] for line in lines] == [["epoch", "1/3"], ["epoch", "2/3"],
                                                   ["epoch", "3/3"], ["finished", "epoch"]]
    first = lines[0]
    for part in ("33%", "train_loss=1", "val_loss=0.9", "best val_loss 0.9 (epoch 1)",
                 "16 samples/s", "<0:04"):   # two epochs of 2 s left
        assert part in first, part
    assert lines[-1].startswith("finished  epoch 3/3  100%")
    assert "val_loss=0.3" in lines[-1] and "best val_loss 0.9 (epoch 1)" in lines[-1]


def test_epoch_lines_are_throttled_but_the_last_epoch_and_the_end_are_kept():
    out = io.StringIO()
    drive(TextProgress(out, interval=3600), epochs=5)
    lines = out.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["1/5", "5/5", "epoch"]
    assert lines[-1].startswith("finished")


def test_a_terminal_gets_a_live_line_redrawn_in_place():
    out = Terminal()
    drive(TextProgress(out, interval=0, width=100), epochs=2)
    text = out.getvalue()
    frames = text.split("\r")
    live = [f for f in frames if f and "\n" not in f]
    assert len(live) >= 6                   # a redraw per progress event (interval 0)
    assert all(len(f) <= 99 for f in live)  # never wraps a 100-column terminal
    assert any("|" in f and "/4 [" in f and "samples/s]" in f for f in live)
    assert any("loss=0.5" in f for f in live)  # the logged loss shows
    # what stays on screen: the epoch lines and the final line, each over the live line
    kept = [line.split("\r")[-1].strip() for line in text.split("\n")[:-1]]
    assert [k.split()[:2] for k in kept] == [["epoch", "1/2"], ["epoch", "2/2"],
                                             ["finished", "epoch"]]
    assert "val_loss=0.9" in kept[0] and "|" not in kept[0]
    assert text.endswith("\n")


def test_a_terminal_redraw_is_throttled():
    out = Terminal()
    drive(TextProgress(out, interval=3600, width=100), epochs=2)
    live = [f for f in out.getvalue().split("\r") if f and "\n" not in f]
    assert len(live) == 2   # the first of each epoch (after its line is written) only


def test_a_stopped_run_ends_with_its_status_and_where_it_stopped():
    out = io.StringIO()
    drive(TextProgress(out, interval=0), epochs=3, stop_at=(2, 3))
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("stopped  epoch 2/3   58%  batch 3/4")
    assert "a checkpoint is kept: train(..., resume=True) continues" in last


def test_stderr_is_the_default_stream(capsys):
    drive(TextProgress(interval=0), epochs=1)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines()[-1].startswith("finished  epoch 1/1")


def test_make_reporter_choices(monkeypatch):
    assert make_reporter(False) is None and make_reporter(None) is None
    assert isinstance(make_reporter("text"), TextProgress)
    # Outside a kernel "auto" (and True) is the text bar.
    assert not is_kernel()
    assert isinstance(make_reporter("auto"), TextProgress)
    assert isinstance(make_reporter(True), TextProgress)

    class Mine:
        def epoch(self, event):
            pass

    mine = Mine()
    assert make_reporter(mine) is mine


def test_make_reporter_picks_the_widget_in_a_kernel(monkeypatch):
    pytest.importorskip("anywidget")
    import mlnb.training.progress as progress
    from mlnb.widgets.monitor import TrainingMonitor

    monkeypatch.setattr(progress, "is_kernel", lambda: True)
    auto = make_reporter("auto")
    widget = make_reporter("widget")
    try:
        assert isinstance(auto, TrainingMonitor) and isinstance(widget, TrainingMonitor)
    finally:
        auto.close()
        widget.close()


@pytest.mark.parametrize("bad", ["fancy", "", 3, object()])
def test_make_reporter_refuses_anything_else(bad):
    with pytest.raises(InvalidArgument, match=r"^progress must be 'auto', 'widget', 'text', True, "
                       r"False or an observer \(an object with some of the methods start, "
                       r"progress, step, epoch, end\), not "):
        make_reporter(bad)

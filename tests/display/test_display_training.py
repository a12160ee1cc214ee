"""The training monitor's pure parts: state from events, the text line, the static HTML."""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import pytest

from mlnb.display.monitor_state import MonitorState, Series
from mlnb.display.training import fmt_duration, render_html, render_text, view
from mlnb.training.events import EpochEnd, Progress, RunEnd, RunStart, StepLog

HOSTILE = "<img src=x onerror=alert(1)>"
COLUMNS = ("epoch", "train_loss", "val_loss", "val_accuracy", "lr", "epoch_time_s",
           "samples_per_s")


def start(**kw):
    args = dict(name="toy", run_id="r1", epochs=3, start_epoch=1, steps_per_epoch=100,
                monitor="val_loss", mode="min", columns=COLUMNS, device="cpu", precision="fp32",
                params={})
    return RunStart(**{**args, **kw})


def progress(epoch, batch, t, *, spe=100, epochs=3, step=None, samples=None, epoch_t=None,
             loss=0.5, gpu=None):
    step = (epoch - 1) * (spe or 100) + batch if step is None else step
    return Progress(epoch=epoch, epochs=epochs, batch=batch, steps_per_epoch=spe,
                    global_step=step, samples=batch * 10 if samples is None else samples,
                    elapsed_s=t, epoch_elapsed_s=t if epoch_t is None else epoch_t, loss=loss,
                    best_value=None, gpu_memory=gpu, gpu_memory_peak=None if gpu is None else 2 * gpu)


def row(epoch, val_loss, **kw):
    return {"epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": val_loss,
            "val_accuracy": 0.5 + epoch / 10, "lr": 0.1, "epoch_time_s": 10.0,
            "samples_per_s": 100.0, **kw}


def epoch_end(r, best_epoch, best_value, epochs=3):
    return EpochEnd(row=r, epochs=epochs, monitor="val_loss", best_epoch=best_epoch,
                    best_value=best_value, checkpoint=None)


def run_end(state_status="finished", **kw):
    run = SimpleNamespace(status=state_status, best_epoch=kw.get("best_epoch"),
                          best_value=kw.get("best_value"), elapsed_s=kw.get("elapsed_s", 30.0),
                          message=kw.get("message", ""), checkpoints=kw.get("checkpoints", ()),
                          version=kw.get("version"))
    return RunEnd(run=run)


def test_progress_gives_percent_batch_rate_and_an_eta_from_steps_per_epoch():
    s = MonitorState()
    s.start(start())
    s.progress(progress(1, 10, 1.0))
    s.progress(progress(1, 30, 3.0))   # 10 batches/s, 100 samples/s
    bar = view(s, ["bar"])["bar"]
    assert bar["epoch"] == "epoch 1/3" and bar["batch"] == "batch 30/100"
    assert bar["fraction"] == pytest.approx(0.1) and bar["percent"] == "10%"
    assert bar["rate"] == "100 samples/s"
    # 70 batches left in this epoch at 10/s, then two epochs of 100 batches: 27 s
    assert s.eta_s() == pytest.approx(27.0)
    assert bar["eta"] == "0:27" and bar["elapsed"] == "0:03"
    assert bar["loss"] == "0.5"


def test_after_an_epoch_the_eta_uses_the_measured_epoch_time():
    s = MonitorState()
    s.start(start())
    s.progress(progress(1, 50, 5.0))
    s.epoch(epoch_end(row(1, 0.4), 1, 0.4))   # the epoch took 10 s with its validation
    assert s.eta_s() == pytest.approx(20.0)  # two epochs left, 10 s each
    s.progress(progress(2, 20, 12.0, epoch_t=2.0))
    s.progress(progress(2, 40, 14.0, epoch_t=4.0))   # 10 batches/s
    assert s.eta_s() == pytest.approx(6.0 + 10.0)
    assert view(s, ["bar"])["bar"]["best"] == "val_loss 0.4 (epoch 1)"


def test_without_steps_per_epoch_the_eta_comes_from_epoch_times():
    s = MonitorState()
    s.start(start(steps_per_epoch=None))
    s.progress(progress(1, 5, 1.0, spe=None))
    assert s.eta_s() is None and view(s, ["bar"])["bar"]["eta"] == ""
    assert view(s, ["bar"])["bar"]["batch"] == "batch 5"
    s.epoch(epoch_end(row(1, 0.4), 1, 0.4))
    s.progress(progress(2, 5, 13.0, spe=None, epoch_t=3.0))
    assert s.eta_s() == pytest.approx(7.0 + 10.0)
    assert s.fraction() == pytest.approx((1 + 0.3) / 3)


def test_series_keep_at_most_their_limit_and_the_shape_of_the_curve():
    series = Series(limit=500)
    for step in range(1, 100_001):
        series.add(step, 1.0 / step)
    points = series.points()
    assert 250 <= len(points) <= 501
    xs = [p[0] for p in points]
    assert xs == sorted(xs) and xs[-1] == 100_000
    ys = [p[1] for p in points]
    assert ys == sorted(ys, reverse=True)   # still falling
    series.add(100_001, math.nan)           # skipped, not drawn
    assert series.points()[-1][0] == 100_000


def test_curves_hold_steps_and_epoch_losses_at_the_epochs_last_step():
    s = MonitorState(max_points=50)
    s.start(start(steps=((10, 1, 2.0), (20, 1, 1.5))))
    for step in range(30, 3001, 10):
        s.step(StepLog(step, 1, 1.0))
    s.epoch(epoch_end(row(1, 0.4), 1, 0.4))
    charts = view(s, ["curves"])["curves"]["charts"]
    assert [c["title"] for c in charts] == ["loss", "val_accuracy"]
    loss = {series["name"]: series["points"] for series in charts[0]["series"]}
    assert set(loss) == {"train (steps)", "train_loss", "val_loss"}
    assert len(loss["train (steps)"]) <= 51
    assert loss["val_loss"] == [[3000, 0.4]]    # x: the epoch's last logged step
    packed = view(s, ["curves"], packed=True)["curves"]["charts"][0]["series"][0]
    assert isinstance(packed["x"], bytes) and len(packed["x"]) == 8 * len(loss["train (steps)"])


def test_resumed_runs_show_the_epochs_already_done():
    s = MonitorState()
    s.start(start(start_epoch=3, resumed=True, history=(row(1, 0.5), row(2, 0.3)),
                  steps=((100, 1, 1.0), (200, 2, 0.5))))
    assert view(s, ["header"])["header"]["resumed"]
    assert view(s, ["bar"])["bar"]["epoch"] == "epoch 2/3"   # done, until epoch 3's progress
    assert s.fraction() == pytest.approx(2 / 3)
    assert [r[0] for r in view(s, ["history"])["history"]["rows"]] == ["1", "2"]


def test_the_text_line_reads_like_tqdm_and_fits_the_terminal():
    s = MonitorState()
    s.start(start())
    s.progress(progress(1, 10, 1.0))
    s.progress(progress(1, 30, 3.0, gpu=3 * 2**30))
    line = render_text(s, 120)
    assert line.startswith("epoch 1/3  10%|")
    assert "| 30/100 [0:03<0:27, 100 samples/s] loss=0.5" in line
    assert "gpu 3.0 GiB" in line
    assert len(render_text(s, 40)) <= 39 and render_text(s, 40).endswith("…")
    assert "#" in render_text(s, 120, ascii_only=True)
    plain = render_text(s)
    assert plain == ("epoch 1/3   10%  batch 30/100  0:03<0:27  100 samples/s  loss=0.5  "
                     "gpu 3.0 GiB (peak 6.0 GiB)")


def test_the_final_line_has_the_status_metrics_best_and_the_version():
    s = MonitorState()
    s.start(start())
    s.epoch(epoch_end(row(1, 0.4), 1, 0.4))
    s.epoch(epoch_end(row(2, 0.5), 1, 0.4))
    s.end(run_end("stopped_early", best_epoch=1, best_value=0.4, message="no better val_loss "
                  "for 1 epochs", version=SimpleNamespace(name="toy", version=2)))
    line = render_text(s, metrics=True)
    assert line.startswith("stopped_early  epoch 2/3   66%")
    for part in ("train_loss=0.5", "val_loss=0.5", "val_accuracy=0.7", "best val_loss 0.4 (epoch 1)",
                 "no better val_loss for 1 epochs", "registered toy:2"):
        assert part in line, part


def test_html_shows_status_progress_metrics_curves_and_history(read_html):
    s = MonitorState()
    s.start(start(name="mnist"))
    for step in range(10, 301, 10):
        s.step(StepLog(step, (step - 1) // 100 + 1, 1.0 / step))
    for epoch, value in ((1, 0.5), (2, 0.3), (3, 0.4)):
        s.epoch(epoch_end(row(epoch, value), 2 if epoch > 1 else 1, min(0.5, value)))
    s.end(run_end("finished", best_epoch=2, best_value=0.3, checkpoints=(1,)))
    markup = render_html(s)
    page = read_html(markup)
    text = " ".join(page.text.split())
    assert "Training mnist · finished · cpu/fp32" in text
    assert "epoch 3/3 · 100%" in text
    assert page.count("progress") == 1 and page.count("svg") == 2   # loss and val_accuracy
    assert "metriclast (epoch 3)best (epoch 2)" in text   # the metrics table's head
    assert "val_loss0.40.3" in text
    # the best epoch's row is bold, for readers without the style sheet
    assert re.search(r"<tr>(<td class=\"mlnb-num\"><strong>[^<]*</strong></td>){7}</tr>", markup)
    assert markup.count("<polyline") == 4


def test_html_escapes_names_from_users_and_caps_the_history(read_html):
    s = MonitorState()
    columns = ("epoch", "train_loss", f"val_{HOSTILE}", "epoch_time_s", "samples_per_s")
    s.start(start(name=HOSTILE, columns=columns, monitor=f"val_{HOSTILE}", epochs=30))
    for epoch in range(1, 26):
        r = {"epoch": epoch, "train_loss": 1.0, f"val_{HOSTILE}": 0.1 * epoch,
             "epoch_time_s": 1.0, "samples_per_s": 5.0}
        s.epoch(EpochEnd(row=r, epochs=30, monitor=f"val_{HOSTILE}", best_epoch=25,
                         best_value=2.5))
    markup = render_html(s)
    page = read_html(markup)   # fails on any <img>, <script> or on* attribute
    assert "img" not in page.tags
    assert HOSTILE in page.text and "&lt;img" in markup
    assert "… 15 more earlier epochs …" in page.text
    assert page.count("tr") == 3 + 12   # metrics: head + 2 rows; history: head, "more", 10 rows


def test_durations_read_like_tqdm():
    assert [fmt_duration(s) for s in (None, math.inf, 0.4, 5, 83, 3725)] == [
        "", "", "0:00", "0:05", "1:23", "1:02:05"]

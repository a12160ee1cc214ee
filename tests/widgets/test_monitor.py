"""TrainingMonitor: what it syncs, how often, what a saved notebook keeps, and its view.

The browser's side of the comm is recorded as ``Frontend`` (conftest) does it; a real
kernel (jupyter_client) shows the updates travel on IOPub while the cell still runs;
``dom_harness.mjs monitor`` runs static/monitor.js in jsdom.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from widgets.conftest import run_dom_harness

pytest.importorskip("anywidget")

from mlnb.training.events import EpochEnd, Progress, RunEnd, RunStart, StepLog  # noqa: E402

HERE = Path(__file__).resolve().parent
JS = HERE.parents[1] / "src" / "mlnb" / "widgets" / "static" / "monitor.js"
HOSTILE = "<img src=x onerror=alert(1)>"
VIEW = "application/vnd.jupyter.widget-view+json"
COLUMNS = ("epoch", "train_loss", "val_loss", f"val_{HOSTILE}", "lr", "epoch_time_s",
           "samples_per_s")


def run_start(**kw):
    args = dict(name=HOSTILE, run_id="r1", epochs=2, start_epoch=1, steps_per_epoch=100,
                monitor="val_loss", mode="min", columns=COLUMNS, device="cuda:0",
                precision="bf16", params={})
    return RunStart(**{**args, **kw})


def progress_at(step, t, gpu=2**30):
    epoch, batch = (step - 1) // 100 + 1, (step - 1) % 100 + 1
    return Progress(epoch=epoch, epochs=2, batch=batch, steps_per_epoch=100, global_step=step,
                    samples=batch * 32, elapsed_s=t, epoch_elapsed_s=batch * 0.01, loss=0.5,
                    best_value=None, gpu_memory=gpu,
                    gpu_memory_peak=None if gpu is None else 2 * gpu)


def epoch_end(epoch, val):
    row = {"epoch": epoch, "train_loss": 0.6 / epoch, "val_loss": val, f"val_{HOSTILE}": 0.9,
           "lr": 0.1, "epoch_time_s": 1.0, "samples_per_s": 3200.0}
    return EpochEnd(row=row, epochs=2, monitor="val_loss", best_epoch=1, best_value=0.4)


def run_end(status="finished"):
    return RunEnd(run=SimpleNamespace(
        status=status, best_epoch=1, best_value=0.4, elapsed_s=2.5, message="",
        checkpoints=("c",), version=SimpleNamespace(name="toy", version=3)))


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def monitor(frontend):
    from mlnb.widgets.monitor import TrainingMonitor

    m = TrainingMonitor(show=False)
    m._clock = Clock()
    m.browser = frontend(m)
    yield m
    m.close()


def test_events_fill_the_synced_state(monitor):
    monitor.start(run_start())
    for step in range(1, 51):
        monitor.step(StepLog(step, 1, 1.0 / step))
    monitor._clock.now += 1
    monitor.progress(progress_at(50, 0.5))
    assert monitor.status == "training" and monitor.kernel_id == ""   # not in a kernel
    assert monitor.header["name"] == HOSTILE and monitor.header["device"] == "cuda:0"
    assert monitor.bar["epoch"] == "epoch 1/2" and monitor.bar["batch"] == "batch 50/100"
    assert monitor.bar["percent"] == "25%" and monitor.bar["loss"] == "0.5"
    assert monitor.gpu == "GPU memory 1.0 GiB (peak 2.0 GiB)"
    monitor._clock.now += 1
    monitor.epoch(epoch_end(1, 0.4))
    rows = {r["name"]: r for r in monitor.metrics["rows"]}
    assert rows["val_loss"] == {"name": "val_loss", "last": "0.4", "best": "0.4", "monitor": True}
    assert rows[f"val_{HOSTILE}"]["last"] == "0.9"   # raw text: the view sets it as text
    assert monitor.history["columns"][3] == f"val_{HOSTILE}"
    titles = [c["title"] for c in monitor.curves["charts"]]
    assert titles == ["loss", f"val_{HOSTILE}"]


def test_no_gpu_no_gpu_line(monitor):
    monitor.start(run_start(device="cpu"))
    monitor.progress(progress_at(1, 0.1, gpu=None))
    assert monitor.gpu == ""


def test_a_burst_of_events_sends_few_updates_each_with_only_what_changed(monitor):
    monitor.start(run_start())
    sent = len(monitor.browser.updates())
    for step in range(1, 1001):   # a burst: the clock does not move
        monitor.progress(progress_at(step % 100 + 1, 0.001 * step))
        if step % 10 == 0:
            monitor.step(StepLog(step, 1, 0.5))
    assert len(monitor.browser.updates()) == sent   # nothing yet: within 0.25 s of the start
    monitor._clock.now += 0.3
    monitor.progress(progress_at(50, 1.1))
    updates = monitor.browser.updates()[sent:]
    assert len(updates) == 1
    assert set(updates[0]) == {"bar", "curves", "gpu"}  # no epoch yet
    monitor._clock.now += 0.3
    monitor.progress(progress_at(51, 1.4))
    assert set(monitor.browser.updates()[-1]) == {"bar"}


def test_curves_go_as_binary_buffers_and_stay_small(monitor):
    monitor.start(run_start())
    for step in range(1, 100_001):
        monitor.step(StepLog(step, 1, 1.0 / step))
    monitor._clock.now += 1
    monitor.progress(progress_at(100, 1.0))
    steps = monitor.curves["charts"][0]["series"][0]
    assert steps["name"] == "train (steps)"
    assert 250 * 8 <= len(steps["x"]) == len(steps["y"]) <= 501 * 8
    message = monitor.browser.sent[-1]
    assert message["method"] == "update"
    assert len(json.dumps(message)) < 4000   # the numbers went as buffers, not JSON
    assert "x" in json.dumps(message["buffer_paths"])


def test_start_displays_the_monitor_and_end_leaves_the_static_view(ip):
    from IPython.core.displaypub import DisplayPublisher

    from mlnb.widgets.monitor import TrainingMonitor

    class Recorder(DisplayPublisher):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.calls = []

        def publish(self, data, metadata=None, source=None, *, transient=None, update=False,
                    **kwargs):
            self.calls.append({"data": data, "transient": transient, "update": update})

    recorder = Recorder(shell=ip)
    ip.display_pub = recorder
    m = TrainingMonitor()
    model_id = m.model_id
    try:
        m.start(run_start())
        m.epoch(epoch_end(1, 0.4))
        m.epoch(epoch_end(2, 0.45))
        m.end(run_end())
    finally:
        m.close()
    shown, final = recorder.calls
    display_id = shown["transient"]["display_id"]
    assert VIEW in shown["data"] and shown["data"][VIEW]["model_id"] == model_id
    assert final["update"] and final["transient"]["display_id"] == display_id
    # The saved notebook keeps HTML and text: readable without the widget, after a restart
    # (JupyterLab would rank a widget view first and show "model not found"), in nbconvert
    # and on GitHub.
    assert set(final["data"]) == {"text/html", "text/plain"}
    html = final["data"]["text/html"]
    for part in ("finished", "epoch 2/2 · 100%", "val_loss", "0.45", "registered toy:3", "<svg"):
        assert part in html, part
    assert HOSTILE not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert final["data"]["text/plain"].startswith("finished  epoch 2/2  100%")
    assert m.status == "finished" and m.note == "registered toy:3"


# -- in a real kernel ------------------------------------------------------------------------

KERNEL_CODE = r"""
import time
from types import SimpleNamespace
from mlnb.training.events import EpochEnd, Progress, RunEnd, RunStart
from mlnb.training.progress import make_reporter
from mlnb.widgets.monitor import kernel_id
m = make_reporter("auto")
print(type(m).__name__, kernel_id())
m.interval = 0.05
m.start(RunStart(name="k", run_id="r", epochs=1, start_epoch=1, steps_per_epoch=400,
                 monitor="train_loss", mode="min", columns=("epoch", "train_loss"),
                 device="cpu", precision="fp32", params={}))
t0 = time.perf_counter()
for step in range(1, 401):   # about 0.4 s, a progress event every ms: a burst
    time.sleep(0.001)
    m.progress(Progress(epoch=1, epochs=1, batch=step, steps_per_epoch=400, global_step=step,
                        samples=step, elapsed_s=time.perf_counter() - t0, epoch_elapsed_s=0.0,
                        loss=1.0, best_value=None))
print("burst", time.perf_counter() - t0)
time.sleep(1.0)   # the cell is still running
m.epoch(EpochEnd(row={"epoch": 1, "train_loss": 0.25}, epochs=1, monitor="train_loss",
                 best_epoch=1, best_value=0.25))
m.end(RunEnd(run=SimpleNamespace(status="finished", best_epoch=1, best_value=0.25,
                                 elapsed_s=1.5, message="", checkpoints=(), version=None)))
"""


def test_in_a_kernel_updates_reach_iopub_while_the_cell_runs(tmp_path):
    jupyter_client = pytest.importorskip("jupyter_client")
    pytest.importorskip("ipykernel")
    kernel = uuid.uuid4().hex
    # Jupyter Server names connection files so; the Stop button needs the id in the name.
    km = jupyter_client.KernelManager(kernel_name="python3",
                                      connection_file=str(tmp_path / f"kernel-{kernel}.json"))
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        msg_id = kc.execute(KERNEL_CODE)
        seen = []
        while True:
            msg = kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            seen.append((time.monotonic(), msg))
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)

    def of(kind):
        return [(t, m["content"]) for t, m in seen if m["msg_type"] == kind]

    errors = of("error")
    assert not errors, errors[0][1]["traceback"]
    stdout = "".join(c["text"] for _, c in of("stream") if c["name"] == "stdout")
    words = stdout.split()
    assert words[:2] == ["TrainingMonitor", kernel]   # "auto" in a kernel; its id
    burst_s = float(words[3])
    idle = seen[-1][0]
    updates = [(t, c["data"]["state"]) for t, c in of("comm_msg")
               if c["data"].get("method") == "update"]
    live = [t for t, state in updates if "bar" in state and idle - t > 0.7]
    assert live, "no update arrived while the cell was running"
    assert len(updates) <= burst_s / 0.05 + 6   # 400 progress events, one update per 50 ms
    (_, shown), = of("display_data")
    (_, final), = of("update_display_data")
    assert VIEW in shown["data"]
    assert final["transient"]["display_id"] == shown["transient"]["display_id"]
    assert "finished" in final["data"]["text/html"]


# -- the view in a DOM (node + jsdom) ---------------------------------------------------------

@pytest.fixture(scope="module")
def dom(tmp_path_factory):
    return run_dom_harness(tmp_path_factory, JS, "monitor")


def test_the_view_draws_the_state_as_text(dom):
    assert dom["progress"] == ["45", "45%"]
    assert dom["facts"] == ("epoch 2/3 · batch 40/100 · 45% · elapsed 0:45 · ETA 1:23 · "
                            "1,234 samples/s · loss 0.1234 · best val_loss 0.1 (epoch 1)")
    assert dom["head"] == f"Training{HOSTILE}·training·cuda:0/bf16Stop"
    assert dom["metrics"][1:] == [["val_loss", "0.1", "0.1"], [HOSTILE, "0.9", "0.9"]]
    assert dom["history"] == [["epoch", "val_loss", HOSTILE], ["1", "0.1", "0.9"]]
    assert dom["more"] == "… 4 earlier epochs"
    assert dom["injected"] == 0   # hostile names are text, never markup
    # binary curves (DataView) and plain points both drawn; dots on epoch series only
    assert dom["charts"] == [{"title": "loss by step", "lines": [3, 1], "dots": 1},
                             {"title": f"{HOSTILE} by step", "lines": [1], "dots": 1}]
    assert dom["foot"] == "GPU memory 1.0 GiB (peak 2.0 GiB)"
    assert dom["afterBurst"] == "epoch 3/3 · 100%"   # fifty updates, the last one shows


def test_stop_interrupts_the_kernel_through_the_server(dom):
    assert dom["before"] == {"status": "training", "stop": "Stop", "hint": ""}
    assert dom["clicked"] == {"status": "stopping…", "stop": "Stopping… (disabled)", "hint": ""}
    assert dom["requests"] == [{
        "url": "/user/ann/api/kernels/0a1b-2c3d/interrupt", "method": "POST",
        "credentials": "same-origin",
        "headers": {"X-XSRFToken": "2|a1b2|c3d4|1700000000", "Authorization": "token tok3n"},
    }]
    assert dom["secondClick"] == 0
    assert dom["stopped"] == {"status": "stopped", "stop": "hidden", "hint": ""}
    assert dom["stoppedFoot"].endswith("stopped on request after an optimizer step")
    assert dom["cleanup"] == [0, 0]


def test_stop_says_how_to_stop_when_it_cannot(dom):
    hint = "press the notebook's Stop ■ button (interrupt the kernel) to stop after this step."
    assert dom["noKernel"] == {"status": "training", "stop": "Stop", "requests": 0, "hint":
                               f"Stop did not reach the kernel (the kernel's id is not known "
                               f"here): {hint}"}
    assert dom["refused"]["hint"] == f"Stop did not reach the kernel (the server answered 403): {hint}"
    assert dom["refused"]["stop"] == "Stop"   # it can be tried again
    assert dom["down"]["hint"].startswith("Stop did not reach the kernel (the server could not")
    assert dom["retried"] == 2

"""``%%mlnb train``, run through a real IPython shell as a notebook cell runs it."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

torch = pytest.importorskip("torch")

FAST = "--device cpu --no-progress"

CELL = """\
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
train_loader = DataLoader(TensorDataset(X, y), batch_size=16)
val_loader = DataLoader(TensorDataset(X, y), batch_size=64)
loss_fn = F.cross_entropy
"""


class InterruptAt:
    """Batches of (X, y) that raise KeyboardInterrupt at batch *k* (counted across epochs)."""

    def __init__(self, x, y, batch_size: int, k: int | None) -> None:
        self.batches = [(x[i:i + batch_size], y[i:i + batch_size])
                        for i in range(0, len(x), batch_size)]
        self.k, self.seen = k, 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for batch in self.batches:
            self.seen += 1
            if self.seen == self.k:
                raise KeyboardInterrupt
            yield batch


def notebook(ip):
    """Put in *ip* what a notebook's first cells would define: imports and data."""
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    ip.push({"torch": torch, "F": F, "DataLoader": DataLoader, "TensorDataset": TensorDataset,
             "X": x, "y": (x[:, 0] > 0).long() + (x[:, 1] > 0).long(),
             "InterruptAt": InterruptAt})
    return ip


@pytest.fixture
def nb(ip, monkeypatch):
    """The shell with data, its kernel registry in memory (no registry server to start)."""
    monkeypatch.setenv("MLNB_REGISTRY", ":memory:")
    return notebook(ip)


def kernel_registry(ip):
    return ip.magics_manager.registry["MlnbMagics"].registry


def train(ip, line: str, cell: str = CELL):
    return ip.run_cell_magic("mlnb", f"train {line} {FAST}", cell)


def usage_error(ip, line: str, cell: str) -> str:
    with pytest.raises(UsageError) as info:
        train(ip, line, cell)
    assert type(info.value) is UsageError  # exactly UsageError: IPython shows one line
    message = str(info.value)
    assert "\n" not in message
    return message


def texts(value):
    """Every string inside nested dicts and lists."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from texts(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from texts(v)


def test_the_cell_trains_registers_its_code_and_stores_the_run(ip):
    nb = notebook(ip)  # the kernel's registry as it is by default: a file behind its server
    run = train(nb, "--name toy --epochs 2 --register")
    assert nb.user_ns["run"] is run
    assert (run.status, run.name, run.epochs_run, run.history["epoch"].tolist()) == (
        "finished", "toy", 2, [1, 2])
    assert "val_accuracy" in run.history  # accuracy is the default metric with a val_loader
    registry = kernel_registry(nb)
    version = registry.get("toy")
    assert version.ref == run.version.ref == "toy:1"
    recorded = "".join(texts(version.params["source"]))
    assert CELL in recorded and "%%mlnb train --name toy --epochs 2 --register" in recorded
    # the weights registered are the trained model's (the best epoch of a 2-epoch run)
    assert registry.load("toy:1").state_dict().keys() == nb.user_ns["model"].state_dict().keys()


def test_running_the_cell_again_starts_a_new_run(nb):
    first = train(nb, "--name toy --epochs 1")
    second = train(nb, "--name toy --epochs 1")
    assert first.run_id != second.run_id and not second.resumed
    assert nb.user_ns["run"] is second


def test_register_under_its_own_name_and_out(nb):
    run = train(nb, "--register blobs --out r", CELL + "train_data = train_loader\n")
    assert run.version.ref == "blobs:1" and run.name == "blobs"
    assert nb.user_ns["r"] is run and "run" not in nb.user_ns
    train(nb, "--out ''")
    assert "run" not in nb.user_ns


def test_loss_option_instead_of_loss_fn(nb):
    cell = CELL.replace("loss_fn = F.cross_entropy\n", "")
    run = train(nb, "--loss cross_entropy --epochs 2 --metrics accuracy", cell)
    assert run.status == "finished" and run.history["train_loss"].notna().all()
    # a loss_fn left by an earlier cell gives way to --loss; one bound by this cell conflicts
    nb.user_ns["loss_fn"] = "stale"
    assert train(nb, "--loss cross_entropy", cell).status == "finished"
    message = usage_error(nb, "--loss mse_loss", CELL)
    assert "defines loss_fn and --loss" in message
    with pytest.raises(UsageError, match="unknown loss 'cros_entropy'; did you mean 'cross_entropy'"):
        train(nb, "--loss cros_entropy", cell)


def test_missing_names_are_one_line_naming_them(nb):
    cell = "net = torch.nn.Linear(4, 3)\nopt = torch.optim.SGD(net.parameters(), lr=0.1)\n"
    message = usage_error(nb, "", cell)
    assert message.startswith("%%mlnb train: the cell must define model, train_loader "
                              "(or train_data) and loss_fn; it defined net, opt. e.g. model = ")
    assert "train_loader = DataLoader(" in message
    assert "run" not in nb.user_ns
    assert "it defined no names" in usage_error(nb, "", "pass\n")


@pytest.mark.parametrize("assignment, match", [
    ("model = 'mlp'", "model must be a torch.nn.Module, not str"),
    ("opt = [1]; del optimizer", "opt must be a torch.optim.Optimizer"),
    ("train_data = 5; del train_loader", "train_data must be a DataLoader"),
    ("loss_fn = 3", "loss_fn must be callable"),
    ("model = torch.nn.Linear(4, 3)", "optimizer holds parameters that are not model's"),
    ("scheduler = torch.optim.lr_scheduler.StepLR(torch.optim.SGD(model.parameters()), 1)",
     "scheduler steps another optimizer than optimizer"),
    ("train_loader = (X, y)", "train_loader holds tensors: give --batch-size N"),
])
def test_a_value_of_the_wrong_kind_names_the_cell_variable(nb, assignment, match):
    message = usage_error(nb, "", CELL + assignment + "\n")
    assert message.startswith("%%mlnb train: ") and match in message


def test_names_bound_by_the_cell_win_and_earlier_cells_provide_the_rest(nb):
    nb.run_cell(CELL, store_history=False).raise_error()  # an earlier cell: old model and data
    cell = ("model = torch.nn.Linear(4, 3)\n"
            "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n")  # the stale `optimizer` loses
    run = train(nb, "--epochs 1", cell)
    assert "val_loss" in run.history  # val_loader and loss_fn came from the earlier cell
    assert nb.user_ns["optimizer"] is not nb.user_ns["opt"]
    run = train(nb, "--epochs 1", cell + "val_loader = None\n")  # None: train without validation
    assert "val_loss" not in run.history and run.monitor == "train_loss"


def test_errors_from_train_name_the_cell_variable(nb):
    cell = CELL.replace("train_loader = DataLoader(TensorDataset(X, y), batch_size=16)",
                        "train_data = [(X, y.float())]")
    message = usage_error(nb, "", cell)
    assert message.startswith("InvalidArgument: the first batch of train_data failed")
    assert "train_loader" not in message


def test_tensors_with_batch_size(nb):
    cell = CELL.replace("train_loader = DataLoader(TensorDataset(X, y), batch_size=16)",
                        "train_data = (X, y)")
    run = train(nb, "--batch-size 16 --epochs 1 --log-every 1", cell)
    assert run.steps["step"].tolist() == [1, 2, 3, 4]  # 64 examples in batches of 16


def test_options_reach_train_and_only_those_given(nb, monkeypatch):
    import mlnb.training

    calls = []
    monkeypatch.setattr(mlnb.training, "train", lambda *a, **kw: calls.append((a, kw)) or "R")
    line = ("--name n --epochs 7 --register m --register-from last --resume --device cpu "
            "--precision fp32 --monitor val_accuracy --mode max --early-stop 2 --grad-accum 3 "
            "--clip-grad 0.5 --seed 4 --batch-size 8 --no-shuffle --keep all --track mlflow,wandb "
            "--init-from m@production --log-every 5 --progress text --metrics accuracy")
    assert nb.run_cell_magic("mlnb", f"train {line}", CELL) == "R"
    (model, loader), kw = calls[-1]
    ns = nb.user_ns
    assert model is ns["model"] and loader is ns["train_loader"]
    registry = kernel_registry(nb)
    assert kw == {
        "val_loader": ns["val_loader"], "loss_fn": ns["loss_fn"], "optimizer": ns["optimizer"],
        "metrics": ["accuracy"], "name": "n", "epochs": 7, "register": "m",
        "register_from": "last", "resume": True, "device": "cpu", "precision": "fp32",
        "monitor": "val_accuracy", "mode": "max", "early_stop": 2, "grad_accum": 3,
        "clip_grad": 0.5, "seed": 4, "batch_size": 8, "shuffle": False, "keep": "all",
        "track": ["mlflow", "wandb"], "init_from": "m@production", "log_every": 5,
        "progress": "text", "registry": registry,
        "source": f"%%mlnb train {line}\n{CELL}",
    }
    nb.run_cell_magic("mlnb", "train --no-checkpoint --no-progress", CELL)
    kw = calls[-1][1]
    assert (kw["checkpoint"], kw["progress"], kw["register"]) == (False, False, None)
    assert not {"epochs", "seed", "name", "device", "keep", "resume"} & kw.keys()
    for bad, match in [("--epochs x", "invalid int value: 'x'"),
                       ("--progress loud", "invalid choice: 'loud'"),
                       ("--progress text --no-progress", "not allowed with argument"),
                       ("--out 'my run'", "not a Python variable name"),
                       ("--register", "--register needs a model name")]:
        with pytest.raises(UsageError, match=match):
            nb.run_cell_magic("mlnb", f"train {bad}", CELL)


def test_the_same_seed_gives_the_same_history(nb):
    cell = CELL.replace("torch.manual_seed(0)\n", "").replace(
        "batch_size=16)", "batch_size=16, shuffle=True)")
    a = train(nb, "--seed 0 --epochs 2", cell)  # the initial weights repeat too
    b = train(nb, "--seed 0 --epochs 2", cell)
    cols = ["train_loss", "val_loss", "val_accuracy"]
    assert a.history[cols].equals(b.history[cols])
    c = train(nb, "--seed 1 --epochs 2", cell)
    assert not a.history[cols].equals(c.history[cols])


def test_resume_continues_an_interrupted_run(nb):
    cell = CELL.replace("DataLoader(TensorDataset(X, y), batch_size=16)",
                        "InterruptAt(X, y, batch_size=16, k=K)")
    nb.user_ns["K"] = 7  # 4 batches an epoch: Ctrl-C in epoch 2
    first = train(nb, "--name toy --epochs 3 --seed 0", cell)
    assert first.status == "interrupted" and first.history["epoch"].tolist() == [1]
    nb.user_ns["K"] = None
    again = train(nb, "--name toy --epochs 3 --seed 0 --resume", cell)
    assert again.resumed and again.run_id == first.run_id
    assert (again.status, again.history["epoch"].tolist()) == ("finished", [1, 2, 3])
    assert nb.user_ns["run"] is again
    resumed = {k: v.clone() for k, v in nb.user_ns["model"].state_dict().items()}
    # it reaches the weights of a run that was never interrupted
    whole = train(nb, "--name other --epochs 3 --seed 0", cell)
    assert whole.history["val_loss"].tolist() == pytest.approx(
        again.history["val_loss"].tolist(), abs=1e-6)
    final = nb.user_ns["model"].state_dict()
    assert all(torch.allclose(final[k], resumed[k], atol=1e-6) for k in final)


def test_the_line_form_says_to_use_the_cell_form(nb):
    with pytest.raises(UsageError, match=r"^%mlnb train needs a cell: put %%mlnb train "
                                         r"--epochs 2 on the first line of a cell"):
        nb.run_line_magic("mlnb", "train --epochs 2")


def test_help_lists_train_and_does_not_run_the_cell(nb, capsys):
    nb.run_line_magic("mlnb", "--help")
    text = capsys.readouterr().out
    assert "  train " in text and "%%mlnb train  the cell is code" in text
    assert nb.run_cell_magic("mlnb", "train --help", "ran = True\n") is None
    text = capsys.readouterr().out
    assert text.startswith("usage: %mlnb train") and "--register [NAME]" in text
    assert "train_loader (or train_data)" in text and "--out" in text
    assert "ran" not in nb.user_ns
    nb.run_line_magic("mlnb", "train --help")
    assert capsys.readouterr().out.startswith("usage: %mlnb train")


def test_an_error_in_the_cell_shows_its_traceback_and_nothing_trains(nb, capsys):
    cell = "import mlnb\nx = 1\nraise mlnb.NotFound('no such data')\n"
    result = nb.run_cell(f"%%mlnb train --epochs 2\n{cell}", store_history=False)
    assert type(result.error_in_exec).__name__ == "NotFound"  # not a one-line UsageError
    shown = capsys.readouterr()
    out = shown.out + shown.err
    assert "Traceback" in out and "raise mlnb.NotFound('no such data')" in out
    assert "line 4" in out  # the cell's own line numbers, the magic line being line 1
    assert "mlnb/magics" not in out  # no frames of the magic itself
    assert "run" not in nb.user_ns
    result = nb.run_cell("%%mlnb train\nx = (\n", store_history=False)
    assert isinstance(result.error_in_exec, SyntaxError)

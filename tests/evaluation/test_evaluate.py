"""``mlnb.evaluate``: a trained model scored from the registry, stored, gated; every edge case a clear error."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from evaluation.toymodels import blobs, mlp
from torch.utils.data import DataLoader, TensorDataset

import mlnb
from mlnb.errors import InvalidArgument
from mlnb.evaluation.accumulate import accumulate
from mlnb.evaluation.metrics import RUNTIME_METRICS, Estimate, compute, confusion_matrix
from mlnb.evaluation.report import Evaluation
from mlnb.registry.records import StoredEstimate
from mlnb.training.fingerprint import data_fingerprint


@pytest.fixture(scope="module")
def strong() -> torch.nn.Module:
    return mlp(120)


@pytest.fixture(scope="module")
def weak() -> torch.nn.Module:
    return mlp(1)


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return blobs(1000, 1)


def predictions(model, X, y, task="classification"):
    with torch.no_grad():
        return accumulate(task, model(X), y)


# -- from the registry: stored, equal to compute, timed ------------------------------------


def test_a_registry_version_is_evaluated_and_stored(memreg, strong, data):
    memreg.register("blobs", strong)
    ev = mlnb.evaluate("blobs", data, registry=memreg, n_bootstrap=200, seed=1)
    assert isinstance(ev, Evaluation)
    assert (ev.ref, ev.task, ev.n, ev.device) == ("blobs:1", "classification", 1000, "cpu")
    assert ev.data_fingerprint == data_fingerprint(data)["hash"]
    [record] = memreg.evaluations("blobs:1")
    assert record.id == ev.record_id and record.task == "classification"
    assert record.data_fingerprint == ev.data_fingerprint
    assert set(record.metrics) == set(ev.estimates)
    acc = ev["accuracy"]
    assert record.metrics["accuracy"] == StoredEstimate(acc.value, acc.lower, acc.upper, acc.note)
    d = record.details
    assert (d["n"], d["device"], d["batch_size"], d["n_bootstrap"], d["seed"]) == (
        1000, "cpu", 256, 200, 1)
    assert d["latency"]["batches"] == 4 and d["latency"]["batches_timed"] == 3
    assert d["confusion_matrix"] == ev.confusion.tolist() and d["num_classes"] == 3
    assert d["reliability"]["count"] == ev.reliability["count"]
    assert d["data"]["kind"] == "tensors" and "gates" not in d
    assert memreg.audit("blobs")[0].action == "evaluate"
    edges = [e for e in memreg.lineage("blobs:1").edges if e.kind == "evaluated_on"]
    assert edges and edges[0].target == f"data:{ev.data_fingerprint[:12]}"


def test_estimates_equal_compute_on_the_same_predictions(strong, data):
    X, y = data
    expected = compute(predictions(strong, X, y), n_bootstrap=200, seed=3)
    ev = mlnb.evaluate(strong, data, n_bootstrap=200, seed=3, batch_size=len(X))
    assert {k: v for k, v in ev.estimates.items() if k not in RUNTIME_METRICS} == expected
    np.testing.assert_array_equal(ev.confusion, confusion_matrix(predictions(strong, X, y)))
    batched = mlnb.evaluate(strong, data, n_bootstrap=200, seed=3, batch_size=100)
    assert batched["accuracy"] == expected["accuracy"]
    assert batched["log_loss"].value == pytest.approx(expected["log_loss"].value, rel=1e-9)


def test_latency_and_throughput_are_measured_per_batch(strong, data):
    ev = mlnb.evaluate(strong, data, n_bootstrap=0, batch_size=100)
    names = ["latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "throughput"]
    assert list(ev.estimates)[-4:] == names
    for name in names:
        est = ev[name]
        assert est.value > 0 and math.isfinite(est.value)
        assert est.lower is None and est.upper is None
        assert "over 9 of 10 batches; the first (warm-up) batch is left out" in est.note
    assert ev["latency_p50_ms"].value <= ev["latency_p95_ms"].value <= ev["latency_p99_ms"].value
    assert ev.details["latency"]["forward_seconds"] > 0
    two = mlnb.evaluate(strong, data, n_bootstrap=0, batch_size=500)
    assert two["latency_p50_ms"].note == "per batch, over 2 of 2 batches"


def test_gates_pass_and_fail_and_are_stored(memreg, strong, data):
    memreg.register("blobs", strong)
    ok = mlnb.evaluate("blobs:1", data, registry=memreg, n_bootstrap=200,
                       gates=["accuracy >= 0.7", "accuracy.lower >= 0.6", "latency_p95_ms <= 1e6"])
    assert ok.passed is True and len(ok.gates) == 3
    bad = mlnb.evaluate("blobs:1", data, registry=memreg, n_bootstrap=200,
                        gates=["accuracy >= 0.99", "log_loss <= 5"])
    assert bad.passed is False
    assert [r.passed for r in bad.gates] == [False, True]
    stored = memreg.evaluations("blobs:1")[0].details["gates"]
    assert stored["passed"] is False and stored["summary"] == bad.gates.summary()
    assert stored["results"][0]["gate"] == "accuracy >= 0.99"
    assert stored["results"][0]["actual"] == bad["accuracy"].value
    assert mlnb.evaluate("blobs:1", data, registry=memreg, n_bootstrap=0).passed is None


def test_relative_gates_compare_with_the_production_versions_evaluation(memreg, strong, weak,
                                                                       data):
    memreg.register("blobs", weak)
    memreg.register("blobs", strong)
    first = mlnb.evaluate("blobs:1", data, registry=memreg, n_bootstrap=200,
                          gates=["accuracy >= @production - 0.005"])
    assert first.passed is True  # nothing holds production yet: nothing to compare
    assert "no version holds @production" in first.gates.results[0].reason
    memreg.promote("blobs:1", "production")
    base = first["accuracy"].value
    ev = mlnb.evaluate("blobs:2", data, registry=memreg, n_bootstrap=200,
                       gates=["accuracy >= @production + 0.05", "log_loss <= @production",
                              "accuracy >= @production + 0.9"])
    assert [r.passed for r in ev.gates] == [True, True, False]
    assert ev.gates.results[0].required == pytest.approx(base + 0.05)
    assert ev.gates.results[1].required == first["log_loss"].value
    # another data set has another fingerprint: production has no evaluation there
    other = mlnb.evaluate("blobs:2", blobs(300, 7), registry=memreg, n_bootstrap=0,
                          gates=["accuracy >= @production"])
    assert other.passed is False and other.gates.results[0].passed is None
    assert "no evaluation of @production on this data" in other.gates.results[0].reason


def test_gates_are_parsed_before_the_model_runs(memreg, data):
    calls = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            calls.append(1)
            return x[:, :3]

    with pytest.raises(InvalidArgument, match=r"unknown metric 'accuarcy'.*did you mean "
                                              r"'accuracy'"):
        mlnb.evaluate(Spy(), data, gates=["accuarcy >= 0.9"])
    with pytest.raises(InvalidArgument, match=r"gate 'accuracy >= @production' compares with "
                                              r"the version holding @production"):
        mlnb.evaluate(Spy(), data, gates=["accuracy >= @production"])
    with pytest.raises(InvalidArgument, match=r"^gate 'rmse <= 1': unknown metric 'rmse'"):
        mlnb.evaluate(Spy(), data, gates=["rmse <= 1"])
    assert calls == []


def test_a_gate_on_a_user_metric_and_on_an_unselected_builtin(strong, data):
    def top2(y_true, proba):
        return float(np.mean((np.argsort(-proba, axis=1)[:, :2] == y_true[:, None]).any(axis=1)))

    ev = mlnb.evaluate(strong, data, metrics=["accuracy", {"top2": top2}], n_bootstrap=50,
                       gates=["top2 >= 0.9", "log_loss <= 5"])
    assert list(ev.estimates)[:3] == ["accuracy", "log_loss", "top2"]
    assert ev.passed is True and ev["top2"].value >= ev["accuracy"].value


def test_a_file_registry_opened_by_default_and_closed(reg, home, monkeypatch, strong, data):
    monkeypatch.setenv("MLNB_HOME", str(home))
    reg.register("blobs", strong)
    ev = mlnb.evaluate("blobs", data, n_bootstrap=100)
    assert reg.evaluations("blobs:1")[0].id == ev.record_id


# -- a module, other data forms, other tasks ------------------------------------------------


def test_a_module_is_evaluated_where_it_is_and_given_back_as_it_was(memreg, strong, data):
    strong.train()
    try:
        ev = mlnb.evaluate(strong, data, n_bootstrap=0, registry=memreg)
        assert strong.training is True
    finally:
        strong.eval()
    assert (ev.ref, ev.record_id, ev.device) == ("<model>", None, "cpu")
    assert memreg.evaluations() == []
    assert repr(ev).startswith("<Evaluation <model> on 1,000 examples: accuracy 0.")


def test_loaders_iterables_and_numpy_give_the_same_metrics(strong, data):
    X, y = data
    ref = mlnb.evaluate(strong, data, n_bootstrap=0)["accuracy"].value
    torch.manual_seed(0)
    shuffled = DataLoader(TensorDataset(X, y), batch_size=64, shuffle=True)
    batches = [(X[i:i + 300], y[i:i + 300]) for i in range(0, 1000, 300)]
    for source in (shuffled, batches, (X.numpy(), y.numpy()), TensorDataset(X, y)):
        assert mlnb.evaluate(strong, source, n_bootstrap=0)["accuracy"].value == ref
    once = mlnb.evaluate(strong, iter(batches), n_bootstrap=0)
    assert once["accuracy"].value == ref and once.data_fingerprint is None


def test_a_one_shot_iterator_is_stored_but_cannot_be_gated_relatively(memreg, strong, data):
    memreg.register("blobs", strong)
    X, y = data
    ev = mlnb.evaluate("blobs:1", iter([(X, y)]), registry=memreg, n_bootstrap=0)
    assert memreg.evaluations("blobs:1")[0].data_fingerprint.startswith("unhashed:")
    assert ev.record_id is not None
    with pytest.raises(InvalidArgument, match=r"cannot be fingerprinted .*iterator"):
        mlnb.evaluate("blobs:1", iter([(X, y)]), registry=memreg,
                      gates=["accuracy >= @production"])


def test_a_regression_model():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(400, 3, generator=g)
    y = X @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(400, generator=g)
    model = torch.nn.Linear(3, 1)
    with torch.no_grad():
        model.weight[:] = torch.tensor([[1.0, -2.0, 0.4]])
        model.bias.zero_()
    ev = mlnb.evaluate(model, (X, y), task="regression", n_bootstrap=100)
    assert list(ev.estimates)[:4] == ["mse", "rmse", "mae", "r2"]
    with torch.no_grad():
        err = model(X)[:, 0] - y
    assert ev["mse"].value == pytest.approx(float((err ** 2).mean()), rel=1e-5)
    assert ev["rmse"].value == pytest.approx(math.sqrt(ev["mse"].value))
    assert ev["mse"].lower < ev["mse"].value < ev["mse"].upper
    assert ev.confusion is None and ev.reliability is None


class TinyLM(torch.nn.Module):
    def __init__(self, vocab: int = 11) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(vocab, 8)
        self.out = torch.nn.Linear(8, vocab)

    def forward(self, ids):
        return self.out(self.emb(ids))


def test_a_language_model():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 11, (40, 9), generator=g)
    inputs, targets = ids[:, :-1], ids[:, 1:].clone()
    targets[:5, -2:] = -100  # padding is not scored
    model = TinyLM()
    ev = mlnb.evaluate(model, (inputs, targets), task="language-model", batch_size=16,
                       n_bootstrap=100)
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model(inputs).reshape(-1, 11),
                                                 targets.reshape(-1), ignore_index=-100)
    assert ev.n == 40 and list(ev.estimates)[0] == "perplexity"
    assert ev["perplexity"].value == pytest.approx(math.exp(float(loss)), rel=1e-5)
    assert ev["perplexity"].lower < ev["perplexity"].value < ev["perplexity"].upper


def test_result_object_helpers(strong, data):
    ev = mlnb.evaluate(strong, data, metrics=["accuracy", "log_loss"], n_bootstrap=50)
    frame = ev.to_frame()
    assert list(frame.columns) == ["metric", "value", "lower", "upper", "note"]
    assert list(frame["metric"]) == ["accuracy", "log_loss", *RUNTIME_METRICS]
    assert frame.loc[0, "value"] == ev["accuracy"].value
    assert isinstance(ev["accuracy"], Estimate)
    with pytest.raises(InvalidArgument, match=r"no metric 'acuracy' in this evaluation; did you "
                                              r"mean 'accuracy'\?"):
        ev["acuracy"]  # noqa: B018
    assert "<svg" in ev._repr_html_()


# -- edge cases: one line each, never a traceback -------------------------------------------


class Fixed(torch.nn.Module):
    """Returns what *make* builds from the inputs (for hostile outputs)."""

    def __init__(self, make) -> None:
        super().__init__()
        self.make = make

    def forward(self, x):
        return self.make(x)


def _nan_rows(x):
    out = x[:, :3].clone()
    out[5:7] = float("nan")
    return out


EDGES = [
    ("empty tensors", lambda m, X, y: mlnb.evaluate(m, (X[:0], y[:0])),
     r"^no examples: the data hold 0 rows; evaluate on data with at least one example$"),
    ("empty loader", lambda m, X, y: mlnb.evaluate(m, DataLoader(TensorDataset(X[:0], y[:0]),
                                                                 batch_size=8)),
     r"^no examples: the data hold 0 rows"),
    ("empty list", lambda m, X, y: mlnb.evaluate(m, []),
     r"^no examples: the data gave no rows to evaluate"),
    ("NaN predictions", lambda m, X, y: mlnb.evaluate(Fixed(_nan_rows), (X, y)),
     r"^NaN or infinite predictions in 8 of 1000 rows \(first at row 5\); check the model"),
    ("label outside", lambda m, X, y: mlnb.evaluate(m, (X, torch.where(y == 2, 5, y))),
     r"^label 5 at row \d+ but the model has 3 classes \(0\.\.2\)"),
    ("metric of another task", lambda m, X, y: mlnb.evaluate(m, (X, y), metrics=["rmse"]),
     r"^metric 'rmse' does not fit task 'classification' \('rmse' is a regression metric\)"),
    ("unknown metric", lambda m, X, y: mlnb.evaluate(m, (X, y), metrics=["acc"]),
     r"^metric 'acc' does not fit task 'classification'"),
    ("classifier as language model", lambda m, X, y: mlnb.evaluate(m, (X, y),
                                                                   task="language-model"),
     r"^language-model outputs have shape \(256, 3\) and targets \(256,\)"),
    ("classifier as regression", lambda m, X, y: mlnb.evaluate(m, (X, y), task="regression"),
     r"^regression outputs have shape \(256, 3\) and targets \(256,\); they must match"),
    ("3-d outputs", lambda m, X, y: mlnb.evaluate(Fixed(lambda x: x[:, None, :]), (X, y)),
     r"^classification outputs have shape \(256, 1, 4\); expected \(batch, classes\)"),
    ("wrong input width", lambda m, X, y: mlnb.evaluate(m, (X[:, :3], y)),
     r"^<model> failed on the first batch \(inputs \(256, 3\) on cpu\): RuntimeError: "
     r".*check that the data fit the model$"),
    ("tuple output", lambda m, X, y: mlnb.evaluate(Fixed(lambda x: (x, x)), (X, y)),
     r"^<model> returned a tuple; evaluation needs one tensor per batch"),
    ("unknown task", lambda m, X, y: mlnb.evaluate(m, (X, y), task="ranking"),
     r"^unknown task 'ranking'; use one of classification, regression, language-model$"),
    ("batch size for a loader", lambda m, X, y: mlnb.evaluate(
        m, DataLoader(TensorDataset(X, y), batch_size=8), batch_size=32),
     r"^batch_size=32 applies to tensors; this DataLoader has its own \(batch_size=8\)"),
    ("not pairs", lambda m, X, y: mlnb.evaluate(m, [(X, y, y)]),
     r"^batch 0 is a tuple of length 3; the data must yield \(inputs, targets\) pairs$"),
    ("three tensors", lambda m, X, y: mlnb.evaluate(m, (X, y, y)),
     r"^tensors must be given as \(inputs, targets\), not 3 of them$"),
    ("one tensor", lambda m, X, y: mlnb.evaluate(m, [X]),
     r"^tensors must be given as \(inputs, targets\), not 1 of them$"),
    ("bad bootstrap", lambda m, X, y: mlnb.evaluate(m, (X, y), n_bootstrap=-1),
     r"^n_bootstrap must be an integer >= 0, not -1$"),
    ("bad output type", lambda m, X, y: mlnb.evaluate(m, (X, y), output_type="scores"),
     r"^output_type must be one of auto, logits, probabilities, not 'scores'$"),
    ("not a model", lambda m, X, y: mlnb.evaluate(42, (X, y)),
     r"^a model to evaluate is a registry reference such as 'mnist:3' or a torch.nn.Module, "
     r"not int 42$"),
]


@pytest.mark.parametrize(("case", "call", "message"), EDGES, ids=[e[0] for e in EDGES])
def test_edge_cases_are_one_line_errors(case, call, message, strong, data):
    with pytest.raises(InvalidArgument, match=message) as err:
        call(strong, *data)
    assert "\n" not in str(err.value)


def test_a_single_class_gives_nan_with_a_note_not_an_error(strong, data):
    X, y = data
    ev = mlnb.evaluate(strong, (X[y == 1], y[y == 1]), n_bootstrap=50)
    auc = ev["roc_auc"]
    assert math.isnan(auc.value) and auc.lower is None
    assert auc.note == "ROC AUC is undefined: only class 1 is present in the labels"
    assert ev["accuracy"].value > 0.5


def test_a_version_that_is_not_a_torch_model(memreg, tmp_path, data):
    f = tmp_path / "notes.txt"
    f.write_text("not a model")
    memreg.register("notes", f)
    with pytest.raises(InvalidArgument, match=r"^notes:1 is a 'files' version \(\w+\), not a "
                                              r"torch.nn.Module"):
        mlnb.evaluate("notes:1", data, registry=memreg)
    with pytest.raises(mlnb.NotFound):
        mlnb.evaluate("missing:1", data, registry=memreg)


# -- the package surface -------------------------------------------------------------------


def test_the_package_exports_are_sorted_lazy_and_real():
    import mlnb.evaluation as ev
    from mlnb.evaluation.comparison import compare
    from mlnb.evaluation.runner import evaluate

    assert ev.__all__ == sorted(ev.__all__) == sorted(ev._LAZY)
    assert ev.evaluate is evaluate is mlnb.evaluate
    assert ev.compare is compare is mlnb.compare
    for name in ev.__all__:
        assert getattr(ev, name) is not None
    code = ("import sys, json, mlnb.evaluation\n"
            "print(json.dumps(sorted(m for m in ('numpy', 'torch', 'scipy', 'pandas') "
            "if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert json.loads(out.splitlines()[-1]) == []

"""``mlnb.compare``: two models on the same examples, paired tests, Holm, one verdict line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from evaluation.toymodels import blobs, mlp
from torch.utils.data import DataLoader, TensorDataset

import mlnb
from mlnb.errors import InvalidArgument
from mlnb.evaluation.comparison import COMPARED, paired_from_draws
from mlnb.evaluation.paired import McNemar, holm, mcnemar_exact, paired_bootstrap
from mlnb.evaluation.report import Comparison


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    """weak (about 0.67), strong (about 0.85) and close, a strong model a few steps earlier."""
    return {"weak": mlp(1), "close": mlp(8), "strong": mlp(12)}


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return blobs(1000, 1)


def correct(model, X, y) -> np.ndarray:
    with torch.no_grad():
        return (model(X).argmax(dim=1) == y).numpy()


def test_a_clearly_better_model_is_called_better(memreg, models, data):
    memreg.register("blobs", models["weak"])
    memreg.register("blobs", models["strong"])
    c = mlnb.compare("blobs:1", "blobs:2", data, registry=memreg, n_bootstrap=200)
    assert isinstance(c, Comparison) and (c.a.ref, c.b.ref, c.n) == ("blobs:1", "blobs:2", 1000)
    acc = c["accuracy"]
    assert acc.method == "McNemar exact" and acc.change == "better"
    assert acc.p_value < 1e-6 and acc.p_holm < 1e-6
    assert acc.difference == pytest.approx(c.b["accuracy"].value - c.a["accuracy"].value)
    assert 0 < acc.lower < acc.difference < acc.upper
    assert c["log_loss"].change == "better" and c["log_loss"].difference < 0
    assert c.verdict.startswith("blobs:2 is better on accuracy by ")
    assert "(Holm-adjusted)" in c.verdict
    assert list(c.results) == list(COMPARED["classification"])
    # a comparison is a view: nothing is stored
    assert memreg.evaluations() == []
    assert c.a.record_id is None and c.b.record_id is None
    assert repr(c).startswith("<Comparison blobs:1 vs blobs:2 on 1,000 examples: blobs:2 is "
                              "better on accuracy")


def test_identical_models_show_no_change_with_p_one(models, data):
    m = models["strong"]
    c = mlnb.compare(m, m, data, n_bootstrap=200)
    for r in c.results.values():
        assert r.difference == 0 and r.p_value == 1 and r.p_holm == 1
        assert r.change == "no change"
    assert c.verdict == ("<model B> vs <model A>: no significant change in accuracy, f1 macro or "
                         "log loss (smallest p = 1, Holm-adjusted)")
    assert c["accuracy"].test.n01 == c["accuracy"].test.n10 == 0


def test_pairing_gives_a_narrower_interval_than_two_separate_intervals(models, data):
    c = mlnb.compare(models["close"], models["strong"], data, n_bootstrap=500)
    for name in ("accuracy", "log_loss"):
        r = c[name]
        a, b = c.a[name], c.b[name]
        unpaired = (b.upper - a.lower) - (b.lower - a.upper)  # both widths added
        assert r.upper - r.lower < 0.5 * unpaired, name


def test_mcnemar_numbers_equal_paired_mcnemar_exact_on_the_predictions(models, data):
    X, y = data
    c = mlnb.compare(models["close"], models["strong"], data, n_bootstrap=100)
    expected = mcnemar_exact(correct(models["close"], X, y), correct(models["strong"], X, y))
    assert isinstance(c["accuracy"].test, McNemar)
    assert c["accuracy"].test == expected
    p = {name: r.p_value for name, r in c.results.items()}
    assert {name: r.p_holm for name, r in c.results.items()} == holm(p)


def test_the_paired_bootstrap_agrees_with_paired_bootstrap_on_a_mean_metric():
    """The draws of resample_metrics and paired_bootstrap's own are the same resamples."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(500, 3, generator=g)
    y = X @ torch.tensor([1.0, -2.0, 0.5]) + 0.3 * torch.randn(500, generator=g)
    a, b = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    with torch.no_grad():
        a.weight[:] = torch.tensor([[1.0, -2.0, 0.2]])
        b.weight[:] = torch.tensor([[1.0, -1.9, 0.5]])
        a.bias.zero_()
        b.bias.zero_()
        sq_a = ((a(X)[:, 0] - y) ** 2).double().numpy()
        sq_b = ((b(X)[:, 0] - y) ** 2).double().numpy()
    c = mlnb.compare(a, b, (X, y), task="regression", n_bootstrap=300, seed=5)
    ours = c["mse"].test
    ref = paired_bootstrap(sq_a, sq_b, "mean", n_bootstrap=300, seed=5)
    assert ours.difference == pytest.approx(ref.difference, rel=1e-6)
    assert (ours.lower, ours.upper) == pytest.approx((ref.lower, ref.upper), rel=1e-6)
    assert (ours.p_value, ours.n_bootstrap, ours.n) == (ref.p_value, ref.n_bootstrap, ref.n)
    assert c["mse"].method == "paired bootstrap"
    assert list(c.results) == ["mse", "mae", "r2"]


def test_a_shuffled_loader_still_pairs_the_models(models, data):
    X, y = data
    torch.manual_seed(3)
    loader = DataLoader(TensorDataset(X, y), batch_size=100, shuffle=True)
    shuffled = mlnb.compare(models["close"], models["strong"], loader, n_bootstrap=50)
    ordered = mlnb.compare(models["close"], models["strong"], data, n_bootstrap=50)
    assert shuffled["accuracy"].test == ordered["accuracy"].test


def test_a_metric_undefined_on_the_data_is_not_tested(models, data):
    X, y = data
    keep = y == 0
    c = mlnb.compare(models["weak"], models["strong"], (X[keep], y[keep]),
                     metrics=["accuracy", "roc_auc"], n_bootstrap=50)
    auc = c["roc_auc"]
    assert auc.test is None and auc.change == "not tested" and auc.p_holm is None
    assert auc.note.startswith("not tested: the metric is undefined on these data")
    assert c["accuracy"].p_holm == c["accuracy"].p_value  # Holm over the one tested metric


def test_paired_from_draws_refuses_mostly_undefined_resamples():
    draws = np.array([np.nan] * 6 + [0.5] * 4)
    result, note = paired_from_draws(0.4, 0.5, draws, draws + 0.1, n=10)
    assert result is None and note.startswith("not tested: the metric is undefined on 6 of 10")


def test_the_table_and_the_frame(models, data):
    c = mlnb.compare(models["weak"], models["strong"], data, n_bootstrap=200)
    frame = c.to_frame()
    assert list(frame["metric"]) == ["accuracy", "f1_macro", "log_loss"]
    assert list(frame["change"]) == ["better", "better", "better"]
    html = c._repr_html_()
    for text in ("B − A [95% interval]", "p (Holm)", "McNemar exact", "paired bootstrap",
                 "better"):
        assert text in html


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"alpha": 1.5}, r"^alpha must lie strictly between 0 and 1, not 1.5$"),
    ({"n_bootstrap": 0}, r"^n_bootstrap must be a positive integer to compare, not 0"),
    ({"metrics": ["mse"]}, r"^metric 'mse' does not fit task 'classification'"),
    ({"task": "ranking"}, r"^unknown task 'ranking'"),
    ({"metrics": []}, r"^no metric to compare: name at least one, e.g. metrics=\['accuracy', "),
])
def test_bad_options_are_refused(kwargs, message, models, data):
    with pytest.raises(InvalidArgument, match=message):
        mlnb.compare(models["weak"], models["strong"], data, **kwargs)

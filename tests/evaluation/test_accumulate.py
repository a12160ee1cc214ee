"""Accumulator: batches in, one copy of the predictions out; clear errors for bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import torch

from mlnb.errors import InvalidArgument
from mlnb.evaluation.accumulate import Accumulator, Predictions, accumulate


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _in_batches(task, outputs, targets, sizes, **options) -> Predictions:
    acc = Accumulator(task, **options)
    start = 0
    for size in sizes:
        acc.add(outputs[start:start + size], targets[start:start + size])
        start += size
    assert start == len(outputs) and len(acc) == len(outputs)
    return acc.finish()


def _sizes(n: int, rng) -> list[int]:
    sizes = []
    while sum(sizes) < n:
        sizes.append(min(int(rng.integers(1, 300)), n - sum(sizes)))
    return sizes


@pytest.mark.parametrize("as_torch", [False, True])
def test_batches_give_the_same_predictions_as_the_whole(as_torch):
    rng = np.random.default_rng(0)
    n = 3000  # past the first buffer (1024 rows): the buffers grow
    logits = rng.normal(size=(n, 7)).astype(np.float32)
    labels = rng.integers(0, 7, n)
    wrap = torch.from_numpy if as_torch else np.asarray
    whole = accumulate("classification", wrap(logits), wrap(labels))
    batched = _in_batches("classification", wrap(logits), wrap(labels), _sizes(n, rng))
    assert np.array_equal(whole.proba, batched.proba)
    assert np.array_equal(whole.y_true, batched.y_true)
    assert np.allclose(whole.proba, _softmax(logits.astype(np.float64)), rtol=0, atol=1e-15)
    assert whole.proba.dtype == np.float64 and whole.y_true.dtype == np.int64

    y, yhat = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    whole = accumulate("regression", yhat, y)
    batched = _in_batches("regression", yhat, y, _sizes(n, rng))
    assert np.array_equal(whole.y_pred, yhat) and np.array_equal(batched.y_true, y)


def test_probabilities_and_logits_give_the_same_probabilities():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(500, 4)) * 3
    from_logits = accumulate("classification", logits, rng.integers(0, 4, 500))
    from_proba = accumulate("classification", _softmax(logits), from_logits.y_true)
    assert np.allclose(from_logits.proba, from_proba.proba, rtol=0, atol=1e-15)
    # float32 probabilities, whose rows sum to 1 only within ~1e-7, are still probabilities
    f32 = accumulate("classification", _softmax(logits).astype(np.float32), from_logits.y_true)
    assert np.allclose(f32.proba, from_logits.proba, atol=1e-6)
    assert np.allclose(f32.proba.sum(axis=1), 1, rtol=0, atol=1e-15)


def test_binary_single_column_is_a_positive_class_logit_or_probability():
    z = np.array([-3.0, -0.2, 0.0, 2.5, 40.0, -800.0])
    y = np.array([0, 0, 1, 1, 1, 0])
    from_logit = accumulate("classification", z[:, None], y)
    p = scipy.special.expit(z)
    assert np.allclose(from_logit.proba[:, 1], p, rtol=1e-15, atol=0)
    assert np.allclose(from_logit.proba.sum(axis=1), 1)
    from_proba = accumulate("classification", p, y)  # (n,) in [0, 1]: probabilities
    assert np.allclose(from_proba.proba, from_logit.proba, atol=1e-15)
    # small logits look like probabilities: output_type says what they are
    small = np.array([0.1, 0.4, 0.9])
    assert accumulate("classification", small, [0, 1, 1]).proba[0, 1] == 0.1
    explicit = accumulate("classification", small, [0, 1, 1], output_type="logits")
    assert explicit.proba[0, 1] == pytest.approx(1 / (1 + math.exp(-0.1)), rel=1e-15)


def test_language_model_perplexity_matches_torch_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 9, 50, generator=g, dtype=torch.float64) * 2
    targets = torch.randint(0, 50, (12, 9), generator=g)
    targets[torch.rand(12, 9, generator=g) < 0.25] = -100  # padding, ignored
    targets[3] = -100  # a sequence with nothing to score
    reference = torch.nn.functional.cross_entropy(
        logits.reshape(-1, 50), targets.reshape(-1), ignore_index=-100).exp().item()
    for wrap in (lambda t: t, lambda t: t.numpy()):
        acc = Accumulator("language-model")
        for rows in (slice(0, 5), slice(5, 6), slice(6, 12)):
            acc.add(wrap(logits[rows]), wrap(targets[rows]))
        pred = acc.finish()
        assert pred.tokens.tolist() == (targets != -100).sum(dim=1).tolist()
        assert pred.nll_sum[3] == 0 and pred.y_true is None
        ppl = math.exp(pred.nll_sum.sum() / pred.tokens.sum())
        assert ppl == pytest.approx(reference, rel=1e-12)
    # float16 logits are scored in float32
    half = accumulate("language-model", logits.half(), targets)
    assert math.exp(half.nll_sum.sum() / half.tokens.sum()) == pytest.approx(reference, rel=1e-2)


def test_predictions_are_frozen_and_read_only():
    pred = accumulate("classification", np.eye(3) * 5, [0, 1, 2])
    with pytest.raises(ValueError):
        pred.proba[0, 0] = 0.5
    with pytest.raises(AttributeError):
        pred.task = "regression"
    assert len(pred) == 3 and pred.num_classes == 3
    assert repr(pred) == "Predictions(classification, 3 examples, 3 classes)"
    sub = pred.take([2, 2, 0])
    assert sub.y_true.tolist() == [2, 2, 0] and sub.proba.shape == (3, 3)


def _error(task, outputs, targets, **options) -> str:
    with pytest.raises(InvalidArgument) as err:
        accumulate(task, outputs, targets, **options)
    return str(err.value)


def test_edge_cases_give_one_line_errors():
    with pytest.raises(InvalidArgument, match=r"^no examples"):
        Accumulator("classification").finish()
    with pytest.raises(InvalidArgument, match=r"^no examples"):
        accumulate("classification", np.zeros((0, 3)), np.zeros(0, dtype=int))
    logits = np.zeros((20, 5))
    labels = np.zeros(20, dtype=int)
    labels[12] = 7
    assert _error("classification", logits, labels).startswith(
        "label 7 at row 12 but the model has 5 classes")
    labels[12] = -1
    assert "label -1 at row 12" in _error("classification", logits, labels)
    logits[[4, 9, 15]] = np.nan
    assert _error("classification", logits, np.zeros(20, dtype=int)).startswith(
        "NaN or infinite predictions in 3 of 20 rows (first at row 4)")
    assert "classes" in _error("classification", np.zeros((4, 2, 2)), [0, 1, 0, 1])
    assert "one class index per row" in _error("classification", np.zeros((4, 3)),
                                               np.zeros((4, 3)))
    assert "class indices; got 0.5 at row 1" in _error("classification", np.zeros((2, 3)),
                                                       [1.0, 0.5])
    assert "num_classes=4" in _error("classification", np.zeros((2, 3)), [0, 1], num_classes=4)
    assert "did you mean 'regression'" in _error("regresion", np.zeros(2), np.zeros(2))
    assert "they must match" in _error("regression", np.zeros((4, 2)), np.zeros(4))
    bad = np.zeros(6)
    bad[[2, 5]] = np.inf
    assert _error("regression", bad, np.zeros(6)).startswith(
        "NaN or infinite predictions in 2 of 6 rows (first at row 2)")
    assert _error("regression", np.zeros(6), bad).startswith("NaN or infinite targets in 2 of 6")


def test_classification_batches_must_agree():
    acc = Accumulator("classification")
    acc.add(np.full((3, 2), 0.5), [0, 1, 0])
    with pytest.raises(InvalidArgument, match="output_type='logits'"):
        acc.add(np.array([[2.0, -1.0]]), [0])
    with pytest.raises(InvalidArgument, match="this batch has 3 classes, earlier batches had 2"):
        acc.add(np.full((1, 3), 1 / 3), [0])
    assert acc.finish() is acc.finish()
    with pytest.raises(InvalidArgument, match="finished"):
        acc.add(np.full((1, 2), 0.5), [0])


def test_language_model_errors():
    logits = np.zeros((2, 3, 5))
    targets = np.array([[1, 2, -100], [4, 5, 0]])
    assert _error("language-model", logits, targets).startswith(
        "token id 5 at row 1, position 1 but the model has 5 tokens")
    assert "no tokens to score" in _error("language-model", logits, np.full((2, 3), -100))
    assert "(batch, positions, vocabulary)" in _error("language-model", logits, targets[:, :2])
    logits[1, 0, 2] = np.nan
    assert _error("language-model", logits, np.ones((2, 3), dtype=int)).startswith(
        "NaN or infinite predictions in 1 of 2 rows (first at row 1)")

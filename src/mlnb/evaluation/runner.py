"""``mlnb.evaluate``: run a model over data, score it with intervals, check gates, store it.

Order of work, each step before anything slower:

1. Check every argument: task, metrics (a metric that does not fit the task
   is refused here), resamples, seed, output type, and the gates, parsed
   strictly against the task's metrics plus the user's.  A gated built-in that
   the ``metrics`` selection left out is computed anyway, so that a gate is
   never undecided for want of a metric.
2. Fingerprint the data (:func:`mlnb.training.fingerprint.data_fingerprint`).
3. Load the model and stream the batches through it
   (:mod:`mlnb.evaluation.streaming`): predictions held once, every forward
   pass timed.
4. Metrics with bootstrap intervals (:func:`mlnb.evaluation.metrics.compute`),
   latency and throughput, confusion matrix and reliability bins.
5. Gates (:func:`mlnb.evaluation.gates.check`).  A relative gate
   (``@production - 0.005``) reads the newest stored evaluation of the version
   holding that alias *on the same data fingerprint*; an alias that holds no
   version passes, no such evaluation leaves the gate undecided.
6. A registry version's evaluation is stored (``Registry.record_evaluation``),
   gate report included, whether or not the gates passed: it is a fact about
   the version, and promotion checks the model's own gates against it.  A
   module passed in stores nothing.
"""

from __future__ import annotations

import operator
import uuid
from typing import TYPE_CHECKING, Any, Iterable

from mlnb.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    import torch

    from mlnb.evaluation.gates import Gate, GateReport
    from mlnb.evaluation.metrics import Estimate
    from mlnb.evaluation.report import Evaluation
    from mlnb.evaluation.streaming import Model
    from mlnb.registry.client import Registry

__all__ = ["CONFUSION_STORED_MAX", "evaluate"]

#: Largest class count whose confusion matrix is stored with the evaluation.
CONFUSION_STORED_MAX = 20


def check_options(task: str, metrics: Any, n_bootstrap: Any, seed: Any,
                  output_type: str) -> tuple[list[str], dict[str, Any]]:
    """Validate the options shared by evaluate and compare; return (built-in names, user metrics).

    Raises
    ------
    InvalidArgument
        Unknown task, a metric that does not fit it, a bad n_bootstrap, seed or output_type.
    """
    from mlnb.evaluation.accumulate import Accumulator, check_task
    from mlnb.evaluation.metrics import _select

    check_task(task)
    names, user = _select(task, metrics)
    try:
        count = operator.index(n_bootstrap)
    except TypeError:
        count = -1
    if isinstance(n_bootstrap, bool) or count < 0:
        raise InvalidArgument(f"n_bootstrap must be an integer >= 0, not {n_bootstrap!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InvalidArgument(f"seed must be an integer or None, not {seed!r}")
    Accumulator(task, output_type=output_type)  # refuses an unknown output_type
    return names, user


def _parse_gates(gates: Any, task: str, user: Iterable[str]) -> tuple[Gate, ...] | None:
    from mlnb.evaluation.gates import parse_gates
    from mlnb.evaluation.metrics import METRICS_BY_TASK

    if gates is None:
        return None
    return parse_gates(gates, known_metrics=set(METRICS_BY_TASK[task]) | set(user))


def _wire(estimates: dict[str, Estimate]) -> dict[str, dict[str, Any]]:
    return {name: {"value": float(e.value), "lower": e.lower, "upper": e.upper, "note": e.note}
            for name, e in estimates.items()}


def gate_dict(report: GateReport) -> dict[str, Any]:
    """A gate report as JSON-ready facts for the stored record."""
    return {"passed": report.passed, "summary": report.summary(),
            "results": [{"gate": r.gate.text, "passed": r.passed, "actual": r.actual,
                         "required": r.required, "reason": r.reason} for r in report]}


def _reference(reg: Registry, model: Model, aliases: list[str],
               fingerprint: str) -> dict[str, Any]:
    """Alias -> stored estimates of its holder on *fingerprint*; None if no version holds it."""
    name = model.ref.rpartition(":")[0]
    out: dict[str, Any] = {}
    for alias in aliases:
        try:
            holder = reg.get(f"{name}@{alias}")
        except NotFound:
            out[alias] = None
            continue
        found = reg.evaluations(holder.ref, data_fingerprint=fingerprint)
        if found:
            out[alias] = found[0].metrics
    return out


def _stored_gates(reg: Any, ref: str) -> tuple[Gate, ...] | None:
    """The gates set on *ref*'s model (``Registry.set_gates``), or ``None``."""
    from mlnb.evaluation.gates import parse_gates
    from mlnb.refs import parse_ref

    texts = reg.gates(parse_ref(ref).name)
    if not texts:
        return None
    # They were checked when set; any metric they name is known to them.
    named = {t.split()[0].split(".")[0] for t in texts}
    return parse_gates(texts, known_metrics=named)


def _check_relative(gates: tuple[Gate, ...] | None, ref_or_model: Any,
                    fingerprint: dict[str, Any]) -> list[str]:
    """The aliases relative gates name; refuse them where they cannot be decided."""
    import torch

    aliases = sorted({g.alias for g in gates or () if g.alias is not None})
    if not aliases:
        return aliases
    first = next(g for g in gates if g.alias is not None)  # type: ignore[union-attr]
    if isinstance(ref_or_model, torch.nn.Module):
        raise InvalidArgument(
            f"gate {first.text!r} compares with the version holding @{first.alias}: evaluate "
            "a registry reference such as 'mnist:3', not a module")
    if fingerprint.get("hash") is None:
        why = fingerprint.get("error") or f"{fingerprint.get('kind')} data"
        raise InvalidArgument(
            f"gate {first.text!r} compares evaluations on the same data, but these data "
            f"cannot be fingerprinted ({why}); pass tensors, a DataLoader or a list of batches")
    return aliases


def run_details(*, n: int, device: torch.device, batch_size: int | None, n_bootstrap: int,
                seed: int | None, timing: Any, fingerprint: dict[str, Any],
                output_type: str) -> dict[str, Any]:
    """What a stored evaluation says about how it was run."""
    data = {k: v for k, v in fingerprint.items() if k != "hash"}
    return {"n": n, "device": str(device), "batch_size": batch_size, "n_bootstrap": n_bootstrap,
            "seed": seed, "output_type": output_type, "latency": timing.summary(), "data": data}


def evaluate(
    ref_or_model: Any,
    data: Any,
    *,
    task: str = "classification",
    metrics: Any = None,
    gates: Any = None,
    device: str | torch.device = "auto",
    batch_size: int | None = None,
    n_bootstrap: int = 1000,
    seed: int | None = 0,
    registry: Registry | None = None,
    output_type: str = "auto",
) -> Evaluation:
    """Evaluate a model on *data*: metrics with bootstrap 95% intervals, latency, gates.

    Parameters
    ----------
    ref_or_model : str or torch.nn.Module
        A registry reference (``"mnist:3"``, ``"mnist@production"``), loaded on
        *device*; its evaluation is stored in the registry.  Or a module, which
        is only evaluated (nothing stored); with ``device="auto"`` it runs
        where it is, and its mode and device are restored afterwards.
    data
        Tensors ``(X, y)`` (numpy arrays too), a ``TensorDataset``, a
        ``DataLoader`` or any iterable of ``(inputs, targets)`` batches.  The
        model is called as ``model(inputs)``.
    task : str
        ``"classification"`` (outputs: logits or probabilities, (batch,
        classes), or (batch,) for binary; targets: class indices),
        ``"regression"`` or ``"language-model"`` (outputs (batch, positions,
        vocabulary) logits aligned with (batch, positions) target ids, -100 ignored).
    metrics
        None (every built-in metric of the task), names, ``{name: fn}`` user
        metrics, or a list mixing both (:func:`mlnb.evaluation.metrics.compute`).
        Latency (p50/p95/p99 of the forward time per batch, in ms) and
        throughput (examples per second) are always measured, without
        intervals; with three or more batches the first, warm-up batch is
        left out of both.
    gates
        Gate strings (``"accuracy >= 0.95"``, ``"accuracy >= @production - 0.005"``),
        checked on this evaluation; parsed before anything runs.  Without them, a
        registered version is checked against its model's own gates
        (``Registry.set_gates``), the ones promotion to production checks.
    device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or a ``torch.device``.
    batch_size
        Examples per batch for tensors (default 256).  Data that brings its
        own batches (a ``DataLoader``, an iterable) refuses it.
    n_bootstrap, seed
        Resamples of the percentile intervals (0: none) and their seed.
    registry
        The registry to load from and store in (default ``mlnb.Registry()``).
    output_type
        ``"auto"``, ``"logits"`` or ``"probabilities"``: how to read a
        classifier's outputs (:class:`~mlnb.evaluation.accumulate.Accumulator`).

    Returns
    -------
    Evaluation
        With ``record_id`` set when it was stored.

    Raises
    ------
    InvalidArgument
        A bad option, metric or gate; empty data; outputs that do not fit the
        task; labels outside the model's classes; NaN predictions.
    NotFound
        The reference names no version.
    """
    from mlnb.evaluation.gates import check
    from mlnb.evaluation.metrics import compute, confusion_matrix, reliability
    from mlnb.evaluation.report import Evaluation
    from mlnb.evaluation.streaming import batches, open_models, stream
    from mlnb.training.fingerprint import data_fingerprint

    names, user = check_options(task, metrics, n_bootstrap, seed, output_type)
    parsed = _parse_gates(gates, task, user)
    chosen = metrics
    if parsed is not None and metrics is not None:
        from mlnb.evaluation.metrics import RUNTIME_METRICS

        gated = [g.metric for g in parsed if g.metric not in names and g.metric not in user
                 and g.metric not in RUNTIME_METRICS]
        chosen = [*names, *dict.fromkeys(gated)] + ([user] if user else [])
    fingerprint = data_fingerprint(data)
    aliases = _check_relative(parsed, ref_or_model, fingerprint)
    with open_models([ref_or_model], device, registry, ["<model>"]) as (models, dev, reg):
        model = models[0]
        stream_of, size, examples = batches(data, batch_size, dev)
        [(pred, timing)] = stream(models, stream_of, task=task, device=dev,
                                  output_type=output_type, size_hint=examples)
        estimates = {**compute(pred, chosen, n_bootstrap=n_bootstrap, seed=seed),
                     **timing.estimates()}
        confusion = rel = None
        if task == "classification":
            confusion, rel = confusion_matrix(pred), reliability(pred)
        report = None
        if parsed is None and model.ref is not None:
            # No gates given: check the model's own, the ones promotion will check.
            parsed = _stored_gates(reg, model.ref)
            if parsed and fingerprint["hash"]:
                aliases = sorted({g.alias for g in parsed if g.alias is not None})
        if parsed:
            reference = _reference(reg, model, aliases, fingerprint["hash"]) if aliases else None
            report = check(parsed, estimates, reference=reference)
        details = run_details(n=len(pred), device=dev, batch_size=size, n_bootstrap=n_bootstrap,
                              seed=seed, timing=timing, fingerprint=fingerprint,
                              output_type=output_type)
        if report is not None:
            details["gates"] = gate_dict(report)
        if confusion is not None:
            details["num_classes"] = int(pred.num_classes)
            details["reliability"] = rel
            if pred.num_classes <= CONFUSION_STORED_MAX:
                details["confusion_matrix"] = confusion.tolist()
        record_id = None
        if model.ref is not None:
            # Unfingerprinted data (a one-shot iterator) still gets a record, under a
            # fingerprint that matches nothing: no relative gate can compare with it.
            stored_fp = fingerprint["hash"] or f"unhashed:{uuid.uuid4().hex}"
            record = reg.record_evaluation(model.ref, data_fingerprint=stored_fp, task=task,
                                           metrics=_wire(estimates), details=details)
            record_id = record.id
    return Evaluation(ref=model.label, task=task, n=len(pred), estimates=estimates,
                      data_fingerprint=fingerprint["hash"], gates=report, confusion=confusion,
                      reliability=rel, record_id=record_id, device=str(dev), details=details)

"""A model's quality gates in the registry, and the check that binds them to promotion.

Server side, like :mod:`mlnb.registry.evaluations`: functions take the
:class:`~mlnb.registry.db.RegistryDB` and run under its lock.  Decisions, each
deliberate:

* **What a gate may name.**  Gates are parsed strictly when they are set
  (:func:`mlnb.evaluation.gates.parse_gates`).  A model has no task of its own,
  so the known metrics are every built-in metric of every task
  (:data:`BUILTIN_METRICS`) plus every metric some stored evaluation of the
  model recorded; a user metric can be gated once an evaluation has produced it.
  A typo (``accuarcy``) is still an error, with a suggestion.
* **Which alias is gated.**  Only ``production`` (:data:`GATED_ALIASES`): the
  issue's rule is that gates refuse to move ``production``.  ``staging`` stays
  protected (it moves only through ``promote``) but is where candidates go to be
  tried, so gating it too would leave nowhere to try a candidate.  ``rollback``
  is not gated either: it returns ``production`` to a version that held it.
* **Which evaluation counts.**  The version's newest evaluation, whatever its
  data.  A relative gate (``@production - 0.005``) compares with the newest
  evaluation of the alias's holder *on the same data fingerprint*; none there
  leaves the gate undecided, which refuses the promotion; an alias that holds no
  version passes (the first production version must be promotable).
* **One transaction.**  :func:`check_promotion` runs inside the transaction
  that moves the alias, under the database lock, so no evaluation or gate change
  can slip in between the check and the move.  Its result becomes the audit
  row's details: ``{"gates": "passed" | "overridden", "evaluation_id",
  "data_fingerprint", "summary", "checked"}``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mlnb.errors import Conflict, InvalidArgument
from mlnb.registry import evaluations

if TYPE_CHECKING:
    from mlnb.registry.db import RegistryDB, _Model

__all__ = ["BUILTIN_METRICS", "GATED_ALIASES", "check_promotion", "set_gates"]

#: Built-in metrics of every task (``mlnb.evaluation.metrics.METRICS_BY_TASK``;
#: repeated here so the registry needs no numpy; a test keeps the two equal).
BUILTIN_METRICS = frozenset({
    "accuracy", "precision_macro", "recall_macro", "f1_macro", "precision_micro",
    "recall_micro", "f1_micro", "roc_auc", "log_loss", "ece", "mse", "rmse", "mae", "r2",
    "perplexity", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "throughput",
})
#: Aliases whose promotion the model's gates decide.
GATED_ALIASES = frozenset({"production"})
_FORCE = "promote(..., force=True, reason=...)"


def load(db: RegistryDB) -> dict[int, tuple[str, ...]]:
    """Every model's gates, by model id (read once when the database opens)."""
    return {mid: tuple(json.loads(text)) for mid, text in
            db.con.execute("select model_id, gates from mlnb.gates").fetchall()}


def set_gates(db: RegistryDB, model: _Model, texts: object, *, user: str,
              reason: str | None) -> tuple[str, ...]:
    """Parse *texts* strictly and make them *model*'s gates; ``[]`` clears them.

    Returns the canonical texts.  Setting the gates a model already has changes
    nothing and writes no audit row, so a resent request is harmless.
    """
    from mlnb.evaluation.gates import parse_gates
    from mlnb.registry.db import _now, _ts

    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise InvalidArgument(
            f"gates must be a list of strings such as ['accuracy >= 0.95'], not "
            f"{type(texts).__name__} {texts!r}" + (f": use [{texts!r}]"
                                                   if isinstance(texts, str) else ""))
    known = BUILTIN_METRICS | evaluations.metric_names(db, model.id)
    canonical = tuple(g.text for g in parse_gates(texts, known_metrics=known))
    before = model.gates
    if canonical == before:
        return canonical
    now = _now()
    with db._transaction():
        if canonical:
            db.con.execute("insert or replace into mlnb.gates values (?, ?, ?, ?)",
                           [model.id, json.dumps(list(canonical)), _ts(now), user])
        else:
            db.con.execute("delete from mlnb.gates where model_id = ?", [model.id])
        db._audit(user, "set_gates", model.name, reason=reason, at=now,
                  details={"gates": list(canonical), "previous": list(before)})
    model.gates = canonical
    return canonical


def _estimates(record: dict[str, Any]) -> dict[str, Any]:
    from mlnb.registry.records import StoredEstimate

    return {k: StoredEstimate(**v) for k, v in record["metrics"].items()}


def check_promotion(db: RegistryDB, model: _Model, ver: int, alias: str, *,
                    force: bool) -> dict[str, Any]:
    """Check *model*'s gates for moving *alias* to *ver*; return the audit details.

    Call inside the transaction that moves the alias.

    Raises
    ------
    Conflict
        No evaluation, or a gate failed or could not be decided, and not *force*.
    """
    from mlnb.evaluation.gates import Gate, check

    ref = f"{model.name}:{ver}"
    texts = list(model.gates)
    gates = [Gate.from_dict({"text": t}) for t in texts]
    count = f"{len(gates)} gate{'s' if len(gates) != 1 else ''}"
    latest = evaluations.newest(db, model.id, ver)
    if latest is None:
        if not force:
            raise Conflict(
                f"cannot promote {ref} to {alias}: {ref} has no evaluation to check "
                f"{model.name}'s {count} against: run mlnb.evaluate('{ref}', data) first, "
                f"or {_FORCE}"
            )
        return {"gates": "overridden", "evaluation_id": None, "data_fingerprint": None,
                "summary": f"{ref} has no evaluation", "checked": texts}
    fp = latest["data_fingerprint"]
    reference: dict[str, Any] = {}
    hints = []
    for name in sorted({g.alias for g in gates if g.alias is not None}):
        holder = model.aliases.get(name)
        if holder is None:
            reference[name] = None  # nothing to compare with: the gate passes
            continue
        theirs = evaluations.newest(db, model.id, holder, fp)
        if theirs is None:
            hints.append(f"evaluate {model.name}:{holder} (@{name}) on data {fp[:12]} too")
        else:
            reference[name] = _estimates(theirs)
    report = check(gates, _estimates(latest), reference=reference)
    details = {"gates": "passed" if report.passed else "overridden",
               "evaluation_id": latest["id"], "data_fingerprint": fp,
               "summary": report.summary(), "checked": texts}
    if report.passed or force:
        return details
    if report.failed:
        hints.append(f"promote a better version or change the gates with "
                     f"set_gates('{model.name}', [...])")
    way_out = "; ".join(hints or [f"evaluate {ref} with the missing metrics"])
    raise Conflict(
        f"cannot promote {ref} to {alias}: its newest evaluation #{latest['id']} "
        f"(data {fp[:12]}) does not pass {model.name}'s gates: {report.summary()}; {way_out}; "
        f"or {_FORCE}"
    )

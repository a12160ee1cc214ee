"""Register what :func:`mlnb.train` trained, with where it came from.

The registered version carries:

- the weights of the best checkpoint (``register_from="best"``, the default when
  checkpoints are kept) or the model as it is after the last epoch (``"last"``);
- that epoch's history row as metrics (``train_loss``, ``val_*``) plus
  ``best_<monitor>``;
- the hyper-parameters, and as params also ``data`` (a fingerprint of the
  training data: shapes, dtypes, a hash of a fixed sample of examples),
  ``environment`` (Python, torch, CUDA, GPU) and ``source`` (the notebook
  cell or script that trained it, the notebook's path, their hashes);
- tags ``trained_with=mlnb.train``, ``run`` (name/run id) and ``checkpoint``;
- a lineage edge to the version given as ``init_from`` (the parent it was
  fine-tuned from).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlnb.registry.client import Registry
    from mlnb.registry.records import Version

__all__ = ["register_run"]


def register_run(reg: Registry, name: str, model: Any, session: Any, plan: Any, *,
                 params: dict[str, Any], register_from: str | None, data: Any,
                 source: str | None, parent: str | None) -> Version:
    """Register the run's best (or last) weights as the next version of *name*."""
    from mlnb.training.fingerprint import data_fingerprint
    from mlnb.training.provenance import code_source, environment

    handle = session.handle
    which = register_from or ("best" if handle is not None else "last")
    best = handle.best_checkpoint() if handle is not None and which == "best" else None
    epoch = best.epoch if best is not None else (
        session.history[-1]["epoch"] if session.history else None)
    row = next((r for r in session.history if r["epoch"] == epoch), {})
    metrics = {k: float(v) for k, v in row.items()
               if k == "train_loss" or k.startswith("val_")}
    if session.best_value is not None:
        metrics[f"best_{plan.monitor}"] = session.best_value
    full = dict(params)
    full.update({
        "epochs_run": len(session.history),
        "registered_epoch": epoch,
        "register_from": "best" if best is not None else "last",
        "data": data_fingerprint(data),
        "environment": environment(),
        "source": code_source(source),
    })
    tags = {"trained_with": "mlnb.train", "run": f"{session.run_name}/{session.run_id}"}
    if best is not None:
        tags["checkpoint"] = str(best.file)
    if best is None:
        return reg.register(name, model, metrics=metrics, params=full, tags=tags, parent=parent)
    # The best weights go into the model for the registration, then the last come back.
    last = {k: v.detach().clone() for k, v in model.state_dict().items()}
    try:
        model.load_state_dict(handle.load(best)["model"])
        return reg.register(name, model, metrics=metrics, params=full, tags=tags, parent=parent)
    finally:
        model.load_state_dict(last)

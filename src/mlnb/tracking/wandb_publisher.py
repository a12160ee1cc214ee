"""Publishing a training run to Weights & Biases (``track=["wandb"]``).

Where it goes
    W&B's own choice of mode: ``WANDB_MODE`` (``offline``, ``disabled``, ...),
    else the settings of ``wandb login``; mlnb never forces a run online, and
    ``mode=`` overrides both.  The run folder is ``$WANDB_DIR/wandb`` when
    ``WANDB_DIR`` is set, else ``$MLNB_HOME/wandb`` (never the notebook's
    folder); ``wandb sync`` uploads an offline run later.  The project is the
    run's name unless ``project=`` is given; the W&B run is named after mlnb's
    run id, with mlnb's tags under ``config["mlnb"]``.

What it logs (the mapping in :mod:`mlnb.tracking.base`)
    The params as the run's config (nested dicts kept).  ``train_loss_step``
    against the step metric ``global_step`` and the epoch columns against
    ``epoch`` (``define_metric``), so each chart has the right x-axis; W&B's
    own ``_step`` only counts ``log`` calls.  The final metrics and
    ``status``/``version`` in the run summary.  The model as an artifact of
    type ``"model"`` named after the run's name (each training adds a
    version).  The run ends with ``finish(exit_code=...)``: 0 for finished,
    stopped_early; 255 (as for a KeyboardInterrupt) for stopped, interrupted;
    1 otherwise.

Throughput
    ``run.log`` hands each row to W&B's service process and returns, so steps
    are logged as they come.  The run is created with
    ``reinit="create_new"``: a second training in one kernel starts its own
    run, and a run the user opened with ``wandb.init()`` stays ``wandb.run``,
    untouched.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

from mlnb.errors import InvalidArgument, MissingDependency
from mlnb.tracking.base import STEP_METRIC, Publisher

if TYPE_CHECKING:
    from mlnb.training.events import RunStart

__all__ = ["WandbPublisher"]

EXIT_CODE = {"finished": 0, "stopped_early": 0, "stopped": 255, "interrupted": 255}
STEP_AXES = {"step": "global_step", "epoch": "epoch"}
MODES = ("online", "offline", "disabled", "shared")


def _import_wandb() -> Any:
    try:
        import wandb
    except ImportError as err:
        raise MissingDependency(
            "wandb", "wandb", "publish training runs to Weights & Biases (track=['wandb'])"
        ) from err
    return wandb


def _reinit(wandb: Any) -> Any:
    """``"create_new"`` where this wandb knows it (0.19.10 and later), else ``True``."""
    numbers = re.findall(r"\d+", str(getattr(wandb, "__version__", "0")))[:3]
    version = tuple(int(n) for n in numbers) + (0,) * (3 - len(numbers))
    return "create_new" if version >= (0, 19, 10) else True


class WandbPublisher(Publisher):
    """Publish a run to Weights & Biases through its own ``wandb.Run``.

    Parameters
    ----------
    project, entity, group:
        Where the run goes; *project* defaults to the run's name.
    mode:
        ``"online"``, ``"offline"``, ``"disabled"`` or ``"shared"``; default:
        W&B's own (``WANDB_MODE``, else its settings).
    dir:
        Folder for W&B's local files; default ``WANDB_DIR``, else ``$MLNB_HOME``.
    tags:
        W&B tags for the run, besides ``"mlnb"``.
    log_model:
        Log the trained weights as a ``"model"`` artifact (default True).

    Raises
    ------
    MissingDependency
        wandb is not installed (``pip install "mlnb[wandb]"``).
    InvalidArgument
        An option of the wrong type or an unknown *mode*.
    """

    name: ClassVar[str] = "wandb"

    def __init__(self, *, project: str | None = None, entity: str | None = None,
                 group: str | None = None, mode: str | None = None,
                 dir: str | os.PathLike[str] | None = None, tags: Sequence[str] | None = None,
                 log_model: bool = True) -> None:
        super().__init__(log_model=log_model)
        for option, value in (("project", project), ("entity", entity), ("group", group)):
            if value is not None and not (isinstance(value, str) and value):
                raise InvalidArgument(
                    f"wandb option {option} must be a non-empty string, not {value!r}"
                )
        if mode is not None and mode not in MODES:
            raise InvalidArgument(f"wandb mode must be one of {', '.join(MODES)}, not {mode!r}")
        if isinstance(tags, str) or not (tags is None or isinstance(tags, Sequence)):
            raise InvalidArgument(f"wandb option tags must be a list of strings, not {tags!r}")
        self._wandb = _import_wandb()
        self.project, self.entity, self.group, self.mode = project, entity, group, mode
        self.dir = None if dir is None else Path(dir)
        self.tags = [str(t) for t in (tags or ())]
        self.run: Any = None
        self._model_name = "model"

    # -- hooks ------------------------------------------------------------------------------

    def open(self, start: RunStart, params: dict[str, Any], tags: dict[str, str]) -> bool:
        """Start a W&B run for this training and tell it which axis each metric uses."""
        self._model_name = re.sub(r"[^A-Za-z0-9_.-]", "-", str(start.name))[:120] or "model"
        options: dict[str, Any] = {
            "project": self.project or str(start.name), "name": str(start.run_id),
            "job_type": "train",
            "config": {**params, "mlnb": {k.removeprefix("mlnb."): v for k, v in tags.items()}},
            "tags": ["mlnb", *self.tags], "reinit": _reinit(self._wandb),
        }
        for option in ("entity", "group"):
            if getattr(self, option) is not None:
                options[option] = getattr(self, option)
        # wandb reads its environment once per process; pass what is set now, so a
        # WANDB_MODE or WANDB_DIR changed in the kernel since still counts.
        mode = self.mode or os.environ.get("WANDB_MODE")
        if mode:
            options["mode"] = mode
        directory = self.dir or os.environ.get("WANDB_DIR")
        if not directory:
            from mlnb.config import settings

            directory = settings().home
        Path(directory).mkdir(parents=True, exist_ok=True)
        options["dir"] = str(directory)
        self.run = self._wandb.init(**options)
        for axis in STEP_AXES.values():
            self.run.define_metric(axis)
        self.run.define_metric(STEP_METRIC, step_metric=STEP_AXES["step"])
        for column in start.columns:
            if column != "epoch":
                self.run.define_metric(str(column), step_metric=STEP_AXES["epoch"])
        return False

    def log_metrics(self, metrics: Mapping[str, float], *, step: int, axis: str) -> None:
        """Log one row: *metrics* plus the axis value (``global_step`` or ``epoch``)."""
        self.run.log({**metrics, STEP_AXES[axis]: int(step)})

    def log_summary(self, metrics: Mapping[str, float], tags: Mapping[str, str]) -> None:
        """Put the final metrics, ``status`` and ``version`` in the run summary."""
        summary = dict(metrics)
        summary.update({k.removeprefix("mlnb."): v for k, v in tags.items()})
        self.run.summary.update(summary)

    def log_model_files(self, directory: Path, info: Mapping[str, Any]) -> None:
        """Log the model's files as a ``"model"`` artifact (copied to W&B's staging now)."""
        metadata = {key: info[key] for key in ("format", "run_id", "status", "version")
                    if info.get(key) is not None}
        artifact = self._wandb.Artifact(self._model_name, type="model", metadata=metadata)
        artifact.add_dir(str(directory))
        self.run.log_artifact(artifact)

    def close(self, status: str) -> None:
        """Finish the W&B run with an exit code from mlnb's status."""
        if self.run is not None:
            run, self.run = self.run, None
            run.finish(exit_code=EXIT_CODE.get(status, 1))

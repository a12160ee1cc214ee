"""Publishing a training run to MLflow (``track=["mlflow"]``).

Where it goes
    ``MLFLOW_TRACKING_URI`` when set (a server, Databricks, a database), else a
    SQLite store ``$MLNB_HOME/mlflow/mlflow.db`` with the artifacts of the
    experiments it creates under ``$MLNB_HOME/mlflow/artifacts``.  MLflow 3
    refuses its old ``./mlruns`` file store unless told otherwise, and its own
    default is ``sqlite:///mlflow.db`` in the current folder, which would
    scatter databases over notebook folders.  See the runs with
    ``mlflow ui --backend-store-uri sqlite:///$MLNB_HOME/mlflow/mlflow.db``.
    The experiment is the run's name unless ``experiment=`` is given; the
    MLflow run is named after mlnb's run id (tag ``mlnb.run_id``).

What it logs (the mapping in :mod:`mlnb.tracking.base`)
    Params flattened (``opt.lr``) and cut to MLflow's length limit.
    ``train_loss_step`` at step = the global batch count; the per-epoch
    columns at step = the epoch number (1, 2, ...), as MLflow's Keras
    autologging does, so the x-axis "Step" of an epoch chart reads as epochs.
    The final metrics at step = the last epoch.  The model's files under the
    run's ``model/`` artifacts (``model.safetensors``, ``mlnb.json``; no pickle,
    unlike ``mlflow.pytorch.log_model``).  mlnb's status becomes MLflow's
    ``FINISHED`` (finished, stopped_early), ``KILLED`` (stopped, interrupted)
    or ``FAILED`` (diverged, failed).

Throughput
    Everything goes through one :class:`mlflow.MlflowClient`, never the fluent
    ``mlflow.start_run`` API, so a run the user has active with
    ``mlflow.start_run()`` is neither ended nor logged into.  The client logs
    synchronously, so step metrics are kept in memory and sent with one
    ``log_batch`` at each epoch end, and at the latest every
    :attr:`MLflowPublisher.flush_s` seconds within a long epoch (a step costs a
    list append; a batch of 1000 metrics costs about 0.1 s on SQLite).
    MLflow's asynchronous logging was not used: its worker threads outlive the
    run, and batching already keeps training from waiting.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Mapping

from mlnb.errors import InvalidArgument, MissingDependency
from mlnb.tracking.base import MODEL_DIR, Publisher, flatten_params

if TYPE_CHECKING:
    from mlnb.training.events import RunStart

__all__ = ["MLflowPublisher", "default_tracking_uri"]

STATUS = {
    "finished": "FINISHED",
    "stopped_early": "FINISHED",
    "stopped": "KILLED",
    "interrupted": "KILLED",
}
_BAD_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")
_BATCH = 1000  # MLflow's most metrics per log_batch request


def _import_mlflow() -> Any:
    try:
        import mlflow
        from mlflow.tracking import MlflowClient  # noqa: F401 - fails on a broken install
    except ImportError as err:
        raise MissingDependency(
            "mlflow", "mlflow", "publish training runs to MLflow (track=['mlflow'])"
        ) from err
    return mlflow


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI``, else the SQLite store under ``$MLNB_HOME/mlflow``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    from mlnb.config import settings

    return "sqlite:///" + (settings().home / "mlflow" / "mlflow.db").as_posix()


def _key(name: str) -> str:
    """A metric or param name MLflow accepts: odd characters become ``_``, 250 at most."""
    key = _BAD_KEY.sub("_", str(name)).strip("/")[:250]
    return key if key not in ("", ".", "..") else "_"


@contextlib.contextmanager
def _quiet_migrations() -> Iterator[None]:
    """Hide the INFO lines MLflow prints while it creates a new SQLite store's tables."""
    loggers = [logging.getLogger(n) for n in ("mlflow.store.db.utils", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class MLflowPublisher(Publisher):
    """Publish a run to MLflow through an :class:`mlflow.MlflowClient`.

    Parameters
    ----------
    experiment:
        MLflow experiment name (created when missing); default: the run's name.
    tracking_uri:
        Default: ``MLFLOW_TRACKING_URI``, else ``sqlite:///$MLNB_HOME/mlflow/mlflow.db``.
    run_name:
        The MLflow run's name; default: mlnb's run id.
    tags:
        Extra tags for the MLflow run.
    log_model:
        Log the trained weights as the run's ``model/`` artifacts (default True).

    Raises
    ------
    MissingDependency
        mlflow is not installed (``pip install "mlnb[mlflow]"``).
    InvalidArgument
        An option of the wrong type.
    """

    name: ClassVar[str] = "mlflow"
    #: Longest a step metric waits in memory before it is sent, in seconds.
    flush_s: ClassVar[float] = 30.0

    def __init__(self, *, experiment: str | None = None, tracking_uri: str | None = None,
                 run_name: str | None = None, tags: Mapping[str, Any] | None = None,
                 log_model: bool = True) -> None:
        super().__init__(log_model=log_model)
        for option, value in (("experiment", experiment), ("tracking_uri", tracking_uri),
                              ("run_name", run_name)):
            if value is not None and not (isinstance(value, str) and value):
                raise InvalidArgument(
                    f"mlflow option {option} must be a non-empty string, not {value!r}"
                )
        if tags is not None and not isinstance(tags, Mapping):
            raise InvalidArgument(f"mlflow option tags must be a dict, not {tags!r}")
        self._mlflow = _import_mlflow()
        self.experiment = experiment
        self.tracking_uri = tracking_uri
        self.run_name = run_name
        self.tags = {str(k): str(v) for k, v in (tags or {}).items()}
        self.client: Any = None
        self.run_id: str | None = None
        self._pending: list[Any] = []
        self._flushed_at = 0.0
        self._last_step = 0

    # -- hooks ------------------------------------------------------------------------------

    def open(self, start: RunStart, params: dict[str, Any], tags: dict[str, str]) -> bool:
        """Create the MLflow run (or reopen the one a resumed run started) and log params."""
        from mlflow.entities import Param, RunTag

        uri = self.tracking_uri or default_tracking_uri()
        local = self.tracking_uri is None and "MLFLOW_TRACKING_URI" not in os.environ
        self._pending, self._flushed_at, self._last_step = [], time.monotonic(), 0
        self.run_id = None
        with _quiet_migrations():
            if local:
                (Path(uri.removeprefix("sqlite:///"))).parent.mkdir(parents=True, exist_ok=True)
            self.client = self._mlflow.MlflowClient(tracking_uri=uri)
            experiment_id = self._experiment(self.experiment or start.name, local)
        limit = _param_limit()
        flat = {_key(k): _text(v, limit) for k, v in flatten_params(params).items()}
        all_tags = {**tags, **self.tags}
        continued = self._reopen(experiment_id, start) if start.resumed else None
        if continued is not None:
            self.run_id = continued.info.run_id
            flat = {k: v for k, v in flat.items() if k not in continued.data.params}
        else:
            from mlnb.config import settings

            run = self.client.create_run(
                experiment_id, run_name=self.run_name or str(start.run_id),
                tags={"mlflow.user": settings().user, **all_tags},
            )
            self.run_id = run.info.run_id
        self.client.log_batch(
            self.run_id,
            params=[Param(k, v) for k, v in flat.items()],
            tags=[RunTag(k, _text(v, 8000)) for k, v in all_tags.items()],
        )
        return continued is not None

    def log_metrics(self, metrics: Mapping[str, float], *, step: int, axis: str) -> None:
        """Queue *metrics* at *step*; send the queue at epoch ends and every ``flush_s``."""
        from mlflow.entities import Metric

        now = time.time()
        timestamp = int(now * 1000)
        self._pending.extend(Metric(_key(k), float(v), timestamp, int(step))
                             for k, v in metrics.items())
        if axis == "epoch":
            self._last_step = int(step)
        if (axis == "epoch" or len(self._pending) >= _BATCH
                or time.monotonic() - self._flushed_at >= self.flush_s):
            self._flush()

    def log_summary(self, metrics: Mapping[str, float], tags: Mapping[str, str]) -> None:
        """Log the final metrics at the last epoch's step and the end-of-run tags."""
        from mlflow.entities import Metric, RunTag

        timestamp = int(time.time() * 1000)
        self._pending.extend(Metric(_key(k), float(v), timestamp, self._last_step)
                             for k, v in metrics.items())
        batch, self._pending = self._pending, []
        self.client.log_batch(self.run_id, metrics=batch,
                              tags=[RunTag(k, _text(v, 8000)) for k, v in tags.items()])

    def log_model_files(self, directory: Path, info: Mapping[str, Any]) -> None:
        """Copy the model's files into the run's ``model/`` artifacts."""
        self.client.log_artifacts(self.run_id, str(directory), artifact_path=MODEL_DIR)

    def close(self, status: str) -> None:
        """Send what is queued and end the MLflow run with the status mapped from mlnb's."""
        if self.client is None or self.run_id is None:
            return
        try:
            self._flush()
        finally:
            self.client.set_terminated(self.run_id, status=STATUS.get(status, "FAILED"))

    # -- internals --------------------------------------------------------------------------

    def _flush(self) -> None:
        self._flushed_at = time.monotonic()
        if self._pending:
            batch, self._pending = self._pending, []
            self.client.log_batch(self.run_id, metrics=batch)

    def _experiment(self, name: str, local: bool) -> str:
        """The id of experiment *name*, created when missing."""
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is None:
            location = None
            if local:
                from mlnb.config import settings

                slug = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "_"
                location = (settings().home / "mlflow" / "artifacts" / slug).as_uri()
            try:
                return self.client.create_experiment(name, artifact_location=location)
            except MlflowException:  # created meanwhile by another process
                found = self.client.get_experiment_by_name(name)
                if found is None:
                    raise
        if found.lifecycle_stage == "deleted":
            raise InvalidArgument(
                f"MLflow experiment {name!r} is deleted; restore it (mlflow experiments restore "
                f"--experiment-id {found.experiment_id}) or pick another name with "
                "track={'mlflow': {'experiment': 'NAME'}}"
            )
        return found.experiment_id

    def _reopen(self, experiment_id: str, start: RunStart) -> Any:
        """The earlier MLflow run of this mlnb run, set running again; None if there is none."""
        run_id = str(start.run_id)
        if "'" in run_id or "\\" in run_id:
            return None
        runs = self.client.search_runs(
            [experiment_id], filter_string=f"tags.`mlnb.run_id` = '{run_id}'",
            max_results=1, order_by=["attributes.start_time DESC"],
        )
        if not runs:
            return None
        self.client.update_run(runs[0].info.run_id, status="RUNNING")
        return runs[0]


def _param_limit() -> int:
    try:
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH
    except ImportError:
        return 500
    return int(MAX_PARAM_VAL_LENGTH)


def _text(value: Any, limit: int) -> str:
    """A param or tag value as MLflow stores it: text, cut to *limit* characters."""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

"""``RegistryPanel``: browse a registry, inspect, compare, promote and roll back, in a notebook.

The widget is an adapter: it calls :class:`~mlnb.Registry` methods and syncs
plain data (lists of dicts, escaped HTML from :mod:`mlnb.display`) to the
browser, where ``static/panel.js`` draws it.  How it works:

- State lives in synced traits (``models``, ``versions``, ``detail_html``...).
  Setting ``selected_model``, ``selected_version``, ``sort_metric``/``sort_desc``,
  ``filter`` or ``compare`` from Python or from the browser reloads what depends
  on it.
- The browser asks for actions with custom messages (``model.send``), handled by
  :meth:`RegistryPanel._on_msg`; each gets a ``{"type": "done"}`` reply, which
  is how the browser keeps at most one refresh in flight.
- Promote, rollback and retire take two steps: :meth:`request` sets ``pending``
  (shown as a question with Confirm and Cancel), :meth:`confirm` does it.
- An :class:`~mlnb.errors.MlnbError` becomes a one-line ``error`` in the panel;
  anything else is a bug, reported on that line and re-raised (ipywidgets shows
  its traceback in the frontend's log, e.g. JupyterLab's Log Console).
- Each action's trait changes go out as one update (``hold_sync``).
- The messages and their arguments are listed in :mod:`mlnb.widgets._messages`;
  what the tables show is built by the pure functions in :mod:`mlnb.widgets._views`.
"""

from __future__ import annotations

import contextlib
import functools
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

from mlnb.errors import InvalidArgument, MissingDependency, MlnbError, NotFound

try:
    import anywidget
    import traitlets as t
except ImportError as err:  # the notebook extra is not installed
    raise MissingDependency("anywidget", "notebook", "show the registry panel") from err

from mlnb.registry.records import sort_versions
from mlnb.widgets import _views
from mlnb.widgets._messages import HANDLERS

if TYPE_CHECKING:
    from mlnb.registry.client import Registry
    from mlnb.registry.records import Version

__all__ = ["RegistryPanel"]

_STATIC = Path(__file__).parent / "static"
_OPS = ("promote", "rollback", "retire")
_MIN_POLL_S = 1.0      # polls closer together than this (two views, two tabs) are skipped
_MAX_MODELS = 1000     # rows of the model list sent to the browser; the filter finds the rest
_LINE = 300            # characters of an error or message line

F = TypeVar("F", bound=Callable[..., Any])


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _LINE else text[: _LINE - 1] + "…"


def _action(func: F) -> F:
    """Run a user action: busy while it runs, its changes sent as one update, errors on a line."""

    @functools.wraps(func)
    def wrapper(self: RegistryPanel, *args: Any, **kwargs: Any) -> Any:
        self.busy = True  # sent at once, so the browser can disable the buttons
        with self.hold_sync():
            try:
                self.message = self.error = ""
                with self._guard():
                    return func(self, *args, **kwargs)
            finally:
                self.busy = False
        return None

    return wrapper  # type: ignore[return-value]


class RegistryPanel(anywidget.AnyWidget):
    """A registry browser: models, a sortable version table, details, diffs and alias moves.

    Parameters
    ----------
    registry:
        The :class:`~mlnb.Registry` to show; by default one from the usual settings.
    model:
        A model to select at once.
    auto_refresh:
        Seconds between refreshes the browser asks for (0, the default, for none).
        Each is cheap (the registry sends only what changed), but it keeps the
        kernel active, which stops JupyterHub's idle culler from stopping it.
    max_rows:
        At most this many versions go to the browser, in the chosen order.

    Raises
    ------
    NotFound
        *model* is not in the registry.
    MissingDependency
        anywidget is not installed (raised on import).
    """

    _esm = _STATIC / "panel.js"
    _css = _STATIC / "panel.css"

    models = t.List(t.Dict(), help="models matching the filter: name, versions, latest, "
                    "aliases, updated_at").tag(sync=True)
    model_count = t.Int(0, help="how many models match the filter").tag(sync=True)
    model_total = t.Int(0, help="how many models the registry holds").tag(sync=True)
    filter = t.Unicode("", help="words every listed model name contains").tag(sync=True)
    selected_model = t.Unicode("").tag(sync=True)
    versions = t.List(t.Dict(), help="the selected model's versions, sorted, at most "
                      "max_rows").tag(sync=True)
    version_count = t.Int(0).tag(sync=True)
    metric_names = t.List(t.Unicode()).tag(sync=True)
    sort_metric = t.Unicode("version", help="'version', 'created_at' or a metric").tag(sync=True)
    sort_desc = t.Bool(True).tag(sync=True)
    selected_version = t.Int(0, help="0 for none").tag(sync=True)
    detail_html = t.Unicode("").tag(sync=True)
    compare = t.List(t.Unicode(), help="two references to diff, or empty").tag(sync=True)
    diff_html = t.Unicode("").tag(sync=True)
    alias = t.Unicode("production", help="the alias Promote and Rollback move").tag(sync=True)
    pending = t.Dict(help="the action waiting for Confirm: id, op, ref, alias, "
                     "prompt").tag(sync=True)
    message = t.Unicode("", help="what the last action did").tag(sync=True)
    error = t.Unicode("", help="why the last action failed, on one line").tag(sync=True)
    busy = t.Bool(False).tag(sync=True)
    auto_refresh = t.Float(0.0, min=0.0, help="seconds between polls; 0 for "
                           "none").tag(sync=True)

    def __init__(self, registry: Registry | None = None, model: str | None = None, *,
                 auto_refresh: float = 0.0, max_rows: int = 500, **kwargs: Any) -> None:
        if not auto_refresh >= 0:
            raise InvalidArgument(f"auto_refresh must be 0 (off) or a number of seconds, "
                                  f"not {auto_refresh!r}")
        if registry is None:
            from mlnb.registry.client import Registry

            registry = Registry()
        self._reg = registry
        self._max_rows = max(1, int(max_rows))
        self._all_models: list[dict[str, Any]] = []
        self._listing: list[Version] = []
        self._pending_id = 0
        self._last_refresh = 0.0
        super().__init__(auto_refresh=auto_refresh, **kwargs)
        self.on_msg(self._on_msg)
        try:
            with self.hold_sync():
                self._load_models()
                if model:
                    self._check_model(model)
                    self.selected_model = model
        except BaseException:
            self.close()  # no half-built widget left behind in the kernel
            raise

    def _check_model(self, name: str) -> None:
        names = [m["name"] for m in self._all_models]
        if name not in names:
            from mlnb.refs import suggest

            raise NotFound(f"no model {name!r}{suggest(name, names)}; "
                           "list them with `mlnb models` or reg.models()")

    @property
    def registry(self) -> Registry:
        """The registry this panel shows."""
        return self._reg

    def __repr__(self) -> str:
        # Cheap on purpose: IPython asks for it on every display.
        return (f"<RegistryPanel model={self.selected_model or '-'} "
                f"versions={self.version_count}>")

    # -- error handling --------------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn an :class:`MlnbError` raised inside into the one-line ``error``."""
        try:
            yield
        except MlnbError as err:
            self.error = _one_line(f"{type(err).__name__}: {err}")

    # -- actions (called by the browser's messages, or from Python) ---------------

    @_action
    def select_model(self, name: str) -> None:
        """Show *name*'s versions (selecting the shown model again refreshes it)."""
        if name and name == self.selected_model:
            self._refresh(full=True)
        else:
            self.selected_model = name

    @_action
    def select_version(self, version: int | None) -> None:
        """Show one version of the selected model in the detail pane (``None``: none)."""
        self.selected_version = int(version or 0)

    @_action
    def sort_by(self, key: str, desc: bool | None = None) -> None:
        """Sort the versions by *key*; without *desc*, flip the order or take the key's default."""
        if key not in _views.ORDER_KEYS and key not in self.metric_names:
            raise InvalidArgument(
                f"cannot sort by {key!r}: use version, created_at or one of the metrics "
                f"({', '.join(self.metric_names) or 'none'})"
            )
        if desc is None:
            desc = not self.sort_desc if key == self.sort_metric else _views.default_desc(key)
        self.sort_metric, self.sort_desc = key, bool(desc)

    @_action
    def refresh(self) -> None:
        """Read the registry again: models, versions, the shown version and diff."""
        self._refresh(full=True)

    def poll(self) -> bool:
        """A cheap refresh for timers: skipped while busy or within a second of the last.

        Re-renders the detail pane only when the shown version's summary changed.
        Returns whether it ran.
        """
        if self.busy or time.monotonic() - self._last_refresh < _MIN_POLL_S:
            return False
        with self.hold_sync(), self._guard():
            self._refresh(full=False)
        return True

    @_action
    def request(self, op: str, version: int | None = None, alias: str | None = None) -> None:
        """Ask to promote, roll back or retire; nothing changes until :meth:`confirm`.

        Parameters
        ----------
        op:
            ``"promote"`` (the version to *alias*), ``"rollback"`` (the selected
            model's *alias* to the version before) or ``"retire"`` (the version).
        version:
            A version of the selected model; by default the selected version.
        alias:
            By default the panel's ``alias`` (``production``).
        """
        from mlnb.refs import check_alias

        if op not in _OPS:
            raise InvalidArgument(f"unknown action {op!r}: use one of {', '.join(_OPS)}")
        name = self.selected_model
        if not name:
            raise InvalidArgument("select a model first")
        alias = check_alias(alias or self.alias)
        self.alias = alias
        version = int(version or self.selected_version)
        if op != "rollback" and not version:
            raise InvalidArgument(f"select a version to {op} first")
        ref = f"{name}:{version}" if op != "rollback" else f"{name}@{alias}"
        if op == "promote":
            prompt = f"Promote {ref} to {alias}?"
        elif op == "rollback":
            row = next((m for m in self._all_models if m["name"] == name), None)
            now = (row or {}).get("aliases", {}).get(alias)
            held = f" (now {name}:{now})" if now else ""
            prompt = f"Roll back {ref}{held} to the version that held it before?"
        else:
            prompt = f"Retire {ref}? It keeps its number but loses its aliases."
        self._pending_id += 1
        self.pending = {"id": self._pending_id, "op": op, "ref": ref, "alias": alias,
                        "prompt": prompt}

    @_action
    def confirm(self, pending_id: int | None = None, reason: str | None = None) -> None:
        """Do the pending action (the one with *pending_id*, when given), then refresh."""
        todo = dict(self.pending)
        if not todo:
            raise InvalidArgument("nothing to confirm: choose Promote, Rollback or Retire first")
        if pending_id is not None and pending_id != todo["id"]:
            raise InvalidArgument(
                f"the action waiting for confirmation is now: {todo['prompt']} "
                "Check it and confirm again"
            )
        self.pending = {}
        reason = (reason or "").strip() or None
        op, ref, alias = todo["op"], todo["ref"], todo["alias"]
        if op == "promote":
            v = self._reg.promote(ref, alias, reason=reason)
            done = f"Promoted {v.ref} to {alias}."
        elif op == "rollback":
            v = self._reg.rollback(ref.partition("@")[0], alias, reason=reason)
            done = f"Rolled back {ref} to {v.ref}."
        else:
            v = self._reg.retire(ref, reason=reason)
            done = f"Retired {v.ref}."
        self._refresh(full=True)
        self.message = done

    @_action
    def cancel(self) -> None:
        """Drop the pending action."""
        self.pending = {}

    @_action
    def compare_versions(self, a: str | int | None = None, b: str | int | None = None) -> None:
        """Show what differs from *a* to *b* (references, or versions of the selected model).

        With no arguments, close the diff.
        """
        if a is None or b is None:
            self.compare = []
            return
        self.compare = [self._ref(a), self._ref(b)]

    def _ref(self, value: str | int) -> str:
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            if not self.selected_model:
                raise InvalidArgument(f"version {value} of which model? select a model first")
            return f"{self.selected_model}:{int(value)}"
        return str(value)

    # -- the browser's messages ----------------------------------------------------

    def _on_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """Handle one message from the browser, and tell it when it is done."""
        action = content.get("action") if isinstance(content, dict) else None
        handler = HANDLERS.get(action)  # type: ignore[arg-type]
        try:
            if handler is None:
                self.error = _one_line(f"InvalidArgument: unknown panel message {content!r}")
            else:
                with self._guard():
                    handler(self, content)
        except Exception as err:
            # A bug, not a user error: say so in the panel and re-raise, so that ipywidgets
            # shows the traceback where the frontend logs callback output.
            self.busy = False
            self.error = _one_line(f"{type(err).__name__}: {err} (a bug in mlnb, please "
                                   "report it; the frontend logs the traceback)")
            raise
        finally:
            self.send({"type": "done", "action": action, "ok": not self.error})

    # -- loading -----------------------------------------------------------------

    def _load_models(self) -> None:
        self._all_models = [_views.model_row(m) for m in self._reg.models()]
        self.model_total = len(self._all_models)
        self._apply_filter()

    def _apply_filter(self) -> None:
        rows = _views.filter_models(self._all_models, self.filter)
        self.model_count = len(rows)
        self.models = rows[:_MAX_MODELS]

    def _load_model(self, name: str) -> None:
        """Show model *name* from scratch: versions read, selection and diff cleared."""
        self.pending = {}
        self.selected_version = 0
        self.compare = []
        self._listing = []
        self._show_versions()
        if name:
            self._listing = list(self._reg.versions(name))
            if not any(self.sort_metric in v.metrics for v in self._listing) and \
                    self.sort_metric not in _views.ORDER_KEYS:
                # A metric this model lacks sorts nothing: back to newest first.
                self.sort_metric, self.sort_desc = "version", True
            self._show_versions()

    def _show_versions(self) -> None:
        """Sort the listing and send the first ``max_rows`` rows."""
        listing = self._listing
        names = sorted(set().union(*(v.metrics.keys() for v in listing))) if listing else []
        ordered = sort_versions(listing, self.sort_metric, self.sort_desc)
        shown = ordered[: self._max_rows]
        self.metric_names = names
        self.version_count = len(listing)
        self.versions = _views.version_rows(listing, shown, names)

    def _load_detail(self) -> None:
        self.detail_html = ""
        if self.selected_model and self.selected_version:
            self.detail_html = _views.detail_html(
                self._reg, f"{self.selected_model}:{self.selected_version}")

    def _load_diff(self) -> None:
        self.diff_html = ""
        if len(self.compare) == 2:
            from mlnb.display import diff_html

            self.diff_html = diff_html(self._reg.diff(*self.compare))

    def _refresh(self, full: bool) -> None:
        """Re-read models and the selected model's versions; the detail when *full* or changed."""
        self._last_refresh = time.monotonic()
        self._load_models()
        name = self.selected_model
        if not name:
            return
        if name not in {m["name"] for m in self._all_models}:
            self.selected_model = ""
            raise NotFound(f"model {name!r} is no longer in the registry")
        before = self._listing
        listing = list(self._reg.versions(name))
        # Unchanged versions come back as the same objects (the client caches listings).
        changed = len(listing) != len(before) or any(a is not b for a, b in zip(listing, before))
        self._listing = listing
        if changed or full:
            self._show_versions()
        if self.selected_version and (full or self._changed(before, listing)):
            self._load_detail()
        if self.compare and (full or changed):
            self._load_diff()

    def _changed(self, before: list[Version], after: list[Version]) -> bool:
        """Whether the selected version's summary differs between two listings."""
        def find(listing: list[Version]) -> Version | None:
            return next((v for v in listing if v.version == self.selected_version), None)

        return find(before) != find(after)

    # -- reacting to trait changes (from Python or the browser) -------------------------

    @t.observe("filter")
    def _filter_changed(self, _change: dict[str, Any]) -> None:
        self._apply_filter()

    # Each sends what it changed as one update, also when set from Python directly.

    @t.observe("selected_model")
    def _model_changed(self, change: dict[str, Any]) -> None:
        with self.hold_sync(), self._guard():
            self._load_model(change["new"])

    @t.observe("sort_metric", "sort_desc")
    def _sort_changed(self, _change: dict[str, Any]) -> None:
        with self.hold_sync():
            self._show_versions()

    @t.observe("selected_version")
    def _version_changed(self, _change: dict[str, Any]) -> None:
        with self.hold_sync(), self._guard():
            self.pending = {}
            self._load_detail()

    @t.observe("compare")
    def _compare_changed(self, _change: dict[str, Any]) -> None:
        with self.hold_sync(), self._guard():
            self._load_diff()

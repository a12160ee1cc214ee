"""Which trackers ``track=`` can name, and turning ``track=`` into publishers.

Built-in trackers are a table of dotted paths, imported only when named, each
with the extra that installs its package.  Other packages add theirs through
the entry-point group ``mlnb.trackers``; in their ``pyproject.toml``::

    [project.entry-points."mlnb.trackers"]
    neptune = "mlnb_neptune:NeptunePublisher"

The class is called with the tracker's options as keyword arguments and must
return a :class:`~mlnb.tracking.base.Publisher` (or any object with the
observer methods ``start``/``step``/``epoch``/``end``).  A built-in name
always wins over an entry point of the same name.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable, Mapping

from mlnb.errors import InvalidArgument
from mlnb.refs import suggest

__all__ = ["ENTRY_POINT_GROUP", "TRACKERS", "available_trackers", "make_publishers"]

#: name -> (``module:Class``, the extra that installs its package)
TRACKERS: dict[str, tuple[str, str]] = {
    "mlflow": ("mlnb.tracking.mlflow_publisher:MLflowPublisher", "mlflow"),
    "wandb": ("mlnb.tracking.wandb_publisher:WandbPublisher", "wandb"),
}
ENTRY_POINT_GROUP = "mlnb.trackers"
_OBSERVER_METHODS = ("start", "step", "epoch", "end")


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_trackers() -> list[str]:
    """The names ``track=`` accepts: the built-ins plus installed entry points, sorted."""
    return sorted(set(TRACKERS) | set(_entry_points()))


def _resolve(name: str) -> Callable[..., Any]:
    if name in TRACKERS:
        module, _, attr = TRACKERS[name][0].partition(":")
        return getattr(importlib.import_module(module), attr)
    found = _entry_points().get(name)
    if found is None:
        known = available_trackers()
        raise InvalidArgument(
            f"unknown tracker {name!r}{suggest(name, known)}; known trackers: {', '.join(known)} "
            f"(others plug in through the {ENTRY_POINT_GROUP!r} entry-point group, "
            "or pass a Publisher object)"
        )
    try:
        return found.load()
    except Exception as err:
        raise InvalidArgument(
            f"tracker {name!r} ({found.value}, entry point {ENTRY_POINT_GROUP!r}) cannot be "
            f"loaded: {type(err).__name__}: {err}; reinstall the package that provides it"
        ) from err


def _build(name: str, options: Any) -> Any:
    if options is None or options is True:
        options = {}
    if not isinstance(options, Mapping):
        raise InvalidArgument(
            f"the options of tracker {name!r} must be a dict of keyword arguments, "
            f"not {type(options).__name__}: {options!r}"
        )
    factory = _resolve(name)
    options = {str(k): v for k, v in options.items()}
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        try:
            signature.bind(**options)
        except TypeError as err:
            accepted = [p.name for p in signature.parameters.values()
                        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
            raise InvalidArgument(
                f"bad options {sorted(options)} for tracker {name!r} ({err}); "
                f"it accepts: {', '.join(accepted) or 'no options'}"
            ) from err
    return factory(**options)


def _is_observer(obj: Any) -> bool:
    return any(callable(getattr(obj, m, None)) for m in _OBSERVER_METHODS)


def make_publishers(track: Any) -> list[Any]:
    """Turn ``train``'s *track* argument into publisher objects, ready before training.

    Parameters
    ----------
    track:
        ``None`` (no tracking), a tracker name (``"mlflow"``, ``"wandb"`` or an
        entry point's name), a dict ``{name: options}`` such as
        ``{"mlflow": {"experiment": "mnist"}, "wandb": {"project": "p"}}`` (the
        options are the publisher's keyword arguments; ``{name: False}`` leaves
        it out), a publisher object, or a list mixing these.

    Returns
    -------
    list
        One publisher per tracker, in the order given.

    Raises
    ------
    InvalidArgument
        An unknown tracker name (with the closest known one), a tracker named
        twice, bad options, or something that is neither a name nor an observer.
    MissingDependency
        A tracker's package is not installed; the message names the extra.
    """
    if track is None or track is False:
        return []
    items = list(track) if isinstance(track, (list, tuple)) else [track]
    publishers: list[Any] = []
    named: set[str] = set()
    for item in items:
        if isinstance(item, Mapping):
            pairs = list(item.items())
        elif isinstance(item, str):
            pairs = [(item, None)]
        elif _is_observer(item) and not isinstance(item, type):
            publishers.append(item)
            continue
        else:
            raise InvalidArgument(
                f"track= takes tracker names ({', '.join(TRACKERS)}), a dict of "
                f"{{name: options}} or publisher objects, not {type(item).__name__}: {item!r}"
            )
        for name, options in pairs:
            if not isinstance(name, str):
                raise InvalidArgument(f"a tracker name must be a string, not {name!r}")
            if options is False:
                continue
            if name in named:
                raise InvalidArgument(
                    f"tracker {name!r} is named twice in track=; name each tracker once"
                )
            named.add(name)
            publishers.append(_build(name, options))
    return publishers

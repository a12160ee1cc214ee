"""Finding and calling the class that rebuilds a stored PyTorch model, safely.

An artifact's metadata names its model's class as ``module`` + ``qualname``.
Importing that module would run code chosen by whoever wrote the metadata, so
mlnb never does: the class is looked up only in modules already in
``sys.modules`` (the notebook's ``__main__``, or a package the user imported),
through the modules' and classes' ``__dict__`` rather than ``getattr`` (a
module-level ``__getattr__`` may import lazily), and it must be an
``nn.Module`` subclass before it is called with the recorded JSON arguments.
``tests/serialize/test_serialize_torch_security.py`` guards this.
"""

from __future__ import annotations

import inspect
import math
import sys
from typing import Any

from mlnb.errors import InvalidArgument, NotFound

__all__ = ["check_init_kwargs", "construct", "find_imported_class"]

_JSON_HINT = "use only None, bool, int, float, str, lists and dicts with str keys"


def _json_value(value: Any, where: str) -> Any:
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        if not math.isfinite(value):
            raise InvalidArgument(
                f"init_kwargs{where} is {value!r}, which JSON cannot hold; {_JSON_HINT}"
            )
        return value
    if kind in (list, tuple):
        return [_json_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise InvalidArgument(
                    f"init_kwargs{where} has a non-string key {key!r}; {_JSON_HINT}"
                )
            out[key] = _json_value(item, f"{where}[{key!r}]")
        return out
    raise InvalidArgument(
        f"init_kwargs{where} is a {kind.__module__}.{kind.__qualname__} ({value!r:.80}), "
        f"which cannot be stored as JSON; {_JSON_HINT} (tuples come back as lists)"
    )


def check_init_kwargs(cls: type, init_kwargs: Any) -> dict[str, Any]:
    """Return *init_kwargs* as plain JSON data, checked against ``cls.__init__``.

    Raises
    ------
    InvalidArgument
        A value is not JSON (a module, a tensor, NaN, a numpy scalar, ...),
        or the names do not fit the class's signature.
    """
    if type(init_kwargs) is not dict:
        raise InvalidArgument(
            f"init_kwargs must be a dict of the model's constructor arguments, "
            f"not {type(init_kwargs).__name__}"
        )
    data = _json_value(init_kwargs, "")
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return data  # a C or otherwise opaque constructor: cannot check, still store
    try:
        signature.bind(**data)
    except TypeError as err:
        raise InvalidArgument(
            f"init_kwargs {sorted(data)} do not fit {cls.__qualname__}{signature}: {err}"
        ) from err
    return data


def _hint(dotted: str, short: str, module: str) -> str:
    if module == "__main__":
        where = f"run the notebook cell that defines {short}"
    else:
        where = f"import the module that defines `{dotted}` first"
    return f"{where}, or pass model_class={short} or into={short}(...)"


def find_imported_class(torch: Any, module: Any, qualname: Any) -> type:
    """Return the ``nn.Module`` subclass *module*.*qualname* from an already-imported module.

    Raises
    ------
    NotFound
        The module is not imported, the name is not in it, or it is not an
        ``nn.Module`` subclass.  Nothing is imported either way.
    """
    if not (isinstance(module, str) and isinstance(qualname, str) and module and qualname):
        raise NotFound(
            "this version does not record its model's class; "
            "pass model_class=YourModel or into=YourModel(...)"
        )
    dotted = f"{module}.{qualname}"
    short = qualname.rpartition(".")[2]
    found: Any = sys.modules.get(module)
    if found is None:
        raise NotFound(
            f"cannot rebuild the model: its class `{dotted}` is in module {module!r}, "
            "which is not imported, and mlnb never imports a module an artifact names. "
            + _hint(dotted, short, module)
        )
    for part in qualname.split("."):
        try:
            namespace = vars(found)
        except TypeError:
            namespace = {}
        found = namespace.get(part)
        if found is None:
            break
    if not (isinstance(found, type) and issubclass(found, torch.nn.Module)):
        raise NotFound(
            f"cannot rebuild the model: `{dotted}` is not an nn.Module class defined in "
            f"the imported module {module!r}. " + _hint(dotted, short, module)
        )
    return found


def construct(cls: type, init_kwargs: Any) -> Any:
    """Call ``cls(**init_kwargs)`` (no arguments when none were recorded).

    Raises
    ------
    InvalidArgument
        The class refuses the recorded arguments.
    """
    kwargs = init_kwargs if isinstance(init_kwargs, dict) else {}
    try:
        return cls(**kwargs)
    except TypeError as err:
        recorded = (
            f"the recorded init_kwargs {kwargs!r:.200}"
            if isinstance(init_kwargs, dict)
            else "no arguments (none were recorded when it was stored)"
        )
        raise InvalidArgument(
            f"cannot build {cls.__qualname__} with {recorded}: {err}; "
            f"pass into={cls.__qualname__}(...) built the way the stored model was"
        ) from err

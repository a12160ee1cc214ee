"""The messages panel.js sends (``model.send(content)``), and the panel method each calls.

Every message is a JSON object with an ``action``; the kernel answers each with
``{"type": "done", "action": ..., "ok": ...}`` once it is handled:

==================  ==========================  ====================================
action              other keys                  calls
==================  ==========================  ====================================
``select_model``    ``name``                    :meth:`RegistryPanel.select_model`
``select_version``  ``version`` (int or null)   :meth:`RegistryPanel.select_version`
``sort``            ``key``, ``desc`` (opt.)    :meth:`RegistryPanel.sort_by`
``refresh``                                     :meth:`RegistryPanel.refresh`
``poll``                                        :meth:`RegistryPanel.poll`
``request``         ``op``, ``version``,        :meth:`RegistryPanel.request`
                    ``alias`` (opt.)
``confirm``         ``id``, ``reason`` (opt.)   :meth:`RegistryPanel.confirm`
``cancel``                                      :meth:`RegistryPanel.cancel`
``compare``         ``a``, ``b`` (none: close)  :meth:`RegistryPanel.compare_versions`
==================  ==========================  ====================================

Values are checked here; a malformed one is an
:class:`~mlnb.errors.InvalidArgument`, shown on the panel's error line.
Filter text, the alias box and the auto-refresh box are plain trait updates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from mlnb.errors import InvalidArgument

if TYPE_CHECKING:
    from mlnb.widgets.panel import RegistryPanel

__all__ = ["HANDLERS"]


def _int(content: dict[str, Any], key: str) -> int | None:
    value = content.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)  # JavaScript has one number type
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{key} must be a whole number, not {value!r}")
    return value


def _str(content: dict[str, Any], key: str) -> str | None:
    value = content.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidArgument(f"{key} must be text, not {value!r}")
    return value


def _bool(content: dict[str, Any], key: str) -> bool | None:
    value = content.get(key)
    if value is not None and not isinstance(value, bool):
        raise InvalidArgument(f"{key} must be true or false, not {value!r}")
    return value


HANDLERS: dict[str, Callable[[RegistryPanel, dict[str, Any]], Any]] = {
    "select_model": lambda p, c: p.select_model(_str(c, "name") or ""),
    "select_version": lambda p, c: p.select_version(_int(c, "version")),
    "sort": lambda p, c: p.sort_by(_str(c, "key") or "version", _bool(c, "desc")),
    "refresh": lambda p, c: p.refresh(),
    "poll": lambda p, c: p.poll(),
    "request": lambda p, c: p.request(_str(c, "op") or "", _int(c, "version"),
                                      _str(c, "alias")),
    "confirm": lambda p, c: p.confirm(_int(c, "id"), _str(c, "reason")),
    "cancel": lambda p, c: p.cancel(),
    "compare": lambda p, c: p.compare_versions(_str(c, "a"), _str(c, "b")),
}

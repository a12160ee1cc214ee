"""The REST handlers under ``{base_url}mlnb/api/`` (routes and records: docs/rest-api.md).

Each handler parses and checks its input, makes one or two :class:`~mlnb.Registry`
calls (the same the ``%mlnb`` magics make) in a worker thread, so a slow registry
never stalls the Jupyter server's event loop, and sends the records of
:mod:`mlnb.server.records`.  An :class:`~mlnb.errors.MlnbError` becomes an HTTP
status and ``{"error", "message"}``; anything else is a bug and keeps Jupyter's
500 answer with its traceback in the server log.

Authentication, authorization (resource ``mlnb``: ``read`` for GET, ``write``
for POST) and XSRF checks are jupyter_server's own.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from mlnb import errors
from mlnb.refs import check_alias, check_name
from mlnb.server import records

__all__ = ["ROUTES", "RegistryHolder", "STATUS", "setup_handlers"]

# MlnbError subclass -> HTTP status; the first match in this order wins.
STATUS: tuple[tuple[type[errors.MlnbError], int], ...] = (
    (errors.InvalidName, 400),
    (errors.InvalidArgument, 400),
    (errors.UntrustedObject, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),  # HoldExpired too
    (errors.UnsafeArchive, 422),
    (errors.MissingDependency, 501),
    (errors.RegistryUnavailable, 503),
)

_VERSION = re.compile(r"[1-9][0-9]{0,17}")
_MAX_BODY = 64 * 1024


def status_of(err: errors.MlnbError) -> int:
    """The HTTP status for *err* (500 for an MlnbError with no better match)."""
    return next((code for cls, code in STATUS if isinstance(err, cls)), 500)


class RegistryHolder:
    """The server's one :class:`~mlnb.Registry` client, opened on first use.

    Built when the extension loads, but the registry itself is opened by the
    first request (in a worker thread): a registry that cannot be reached then
    is that request's error, not a Jupyter server that fails to start.  The
    client's socket closes with the Jupyter server's process.
    """

    def __init__(self) -> None:
        self._registry: Any = None
        self._lock = threading.Lock()
        self.executor = ThreadPoolExecutor(4, thread_name_prefix="mlnb-api")

    def get(self) -> Any:
        """The registry client (opened now when this is the first call)."""
        with self._lock:
            if self._registry is None:
                from mlnb.registry.client import Registry

                self._registry = Registry()
            return self._registry


class _Handler(APIHandler):
    """Base of every mlnb handler: the registry, the answer, the error mapping."""

    auth_resource = "mlnb"

    @property
    def holder(self) -> RegistryHolder:
        return self.settings["mlnb_registry"]

    async def answer(self, work: Callable[[Any], dict[str, Any]], status: int = 200) -> None:
        """Run ``work(registry)`` in a worker thread and send its dict, with the change token."""

        def run() -> dict[str, Any]:
            reg = self.holder.get()
            payload = work(reg)
            return {"token": reg.changes(), **payload}

        try:
            payload = await asyncio.get_running_loop().run_in_executor(self.holder.executor, run)
        except errors.MlnbError as err:
            return self.refuse(err)
        self.set_status(status)
        self.finish(records.dumps(payload))

    def refuse(self, err: errors.MlnbError) -> None:
        """Answer with *err*'s status and ``{"error", "message"}``."""
        self.set_status(status_of(err))
        self.finish(records.dumps({"error": type(err).__name__, "message": str(err)}))

    def body(self, allowed: tuple[str, ...]) -> dict[str, Any]:
        """The JSON object sent, with only *allowed* keys, each a string or null."""
        raw = self.request.body or b"{}"
        if len(raw) > _MAX_BODY:
            raise errors.InvalidArgument(f"request body over {_MAX_BODY} bytes")
        try:
            data = json.loads(raw)
        except ValueError as err:
            raise errors.InvalidArgument(f"request body is not JSON: {err}") from None
        if not isinstance(data, dict):
            raise errors.InvalidArgument("request body must be a JSON object")
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise errors.InvalidArgument(
                f"unknown field(s) {', '.join(map(repr, unknown))}; known: {', '.join(allowed)}"
            )
        for key, value in data.items():
            if value is not None and not isinstance(value, str):
                raise errors.InvalidArgument(f"{key} must be a string")
        return data


def _ref(name: str, version: str) -> str:
    check_name(name)
    if not _VERSION.fullmatch(version):
        raise errors.InvalidArgument(f"version {version!r} is not a version number (1, 2, ...)")
    return f"{name}:{version}"


def _limit(text: str | None) -> int:
    if text is None:
        return 200
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise errors.InvalidArgument(f"limit must be a whole number from 1 to 10000, not {text!r}")
    return int(text)


def _row(reg: Any, version: Any) -> dict[str, Any]:
    return {"version": records.version_row(version, reg.versions(version.name))}


class StatusHandler(_Handler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        from mlnb import __version__

        await self.answer(lambda reg: {
            "mlnb": __version__, "registry": reg.settings.registry,
            "storage": reg.storage_url, "user": reg.user,
        })


class ChangesHandler(_Handler):
    # A sidebar polls this; it must not count as use, or JupyterHub's idle
    # culler would never stop a server whose browser tab stays open.
    _track_activity = False

    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self.answer(lambda reg: {})


class ModelsHandler(_Handler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        def work(reg: Any) -> dict[str, Any]:
            out = []
            for m in reg.models():
                versions = reg.versions(m.name) if m.versions else []
                out.append(records.model_record(m, records.main_version(versions)))
            return {"models": out}

        await self.answer(work)


class VersionsHandler(_Handler):
    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        try:
            check_name(name)
        except errors.MlnbError as err:
            return self.refuse(err)

        def work(reg: Any) -> dict[str, Any]:
            versions = reg.versions(name)
            if not versions:
                reg.get(name)  # NotFound, with its "did you mean"
            return records.versions_record(name, versions)

        await self.answer(work)


class VersionHandler(_Handler):
    @web.authenticated
    @authorized
    async def get(self, name: str, version: str) -> None:
        try:
            ref = _ref(name, version)
        except errors.MlnbError as err:
            return self.refuse(err)

        def work(reg: Any) -> dict[str, Any]:
            v = reg.get(ref)
            return records.detail_record(v, reg.versions(name), reg.lineage(ref),
                                         reg.audit(name, limit=10_000), reg.evaluations(v.ref))

        await self.answer(work)


class ActionHandler(_Handler):
    """``promote`` and ``retire`` of one version."""

    @web.authenticated
    @authorized
    async def post(self, name: str, version: str, action: str) -> None:
        try:
            ref = _ref(name, version)
            body = self.body(("alias", "reason") if action == "promote" else ("reason",))
            alias = check_alias(body.get("alias") or "production")
        except errors.MlnbError as err:
            return self.refuse(err)
        reason = body.get("reason") or None
        if action == "promote":
            await self.answer(lambda reg: _row(reg, reg.promote(ref, alias, reason=reason)))
        else:
            await self.answer(lambda reg: _row(reg, reg.retire(ref, reason=reason)))


class RollbackHandler(_Handler):
    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        try:
            check_name(name)
            body = self.body(("alias", "reason"))
            alias = check_alias(body.get("alias") or "production")
        except errors.MlnbError as err:
            return self.refuse(err)
        reason = body.get("reason") or None
        await self.answer(lambda reg: _row(reg, reg.rollback(name, alias, reason=reason)))


class AuditHandler(_Handler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            name = self.get_query_argument("model", None) or None
            if name is not None:
                check_name(name)
            limit = _limit(self.get_query_argument("limit", None))
        except errors.MlnbError as err:
            return self.refuse(err)
        await self.answer(lambda reg: {
            "entries": [records.audit_record(e) for e in reg.audit(name, limit=limit)]
        })


_NAME = r"(?P<name>[^/]+)"
_NUM = r"(?P<version>[^/]+)"

# path under {base_url}mlnb/api/ -> handler; one table, joined to base_url once.
ROUTES: tuple[tuple[str, type[_Handler]], ...] = (
    ("status", StatusHandler),
    ("changes", ChangesHandler),
    ("models", ModelsHandler),
    (f"models/{_NAME}/versions", VersionsHandler),
    (f"models/{_NAME}/versions/{_NUM}", VersionHandler),
    (f"models/{_NAME}/versions/{_NUM}/(?P<action>promote|retire)", ActionHandler),
    (f"models/{_NAME}/rollback", RollbackHandler),
    ("audit", AuditHandler),
)


def setup_handlers(web_app: Any) -> RegistryHolder:
    """Add the routes to *web_app* under its ``base_url``, with one registry holder."""
    holder = RegistryHolder()
    web_app.settings["mlnb_registry"] = holder
    base = url_path_join(web_app.settings["base_url"], "mlnb", "api")
    web_app.add_handlers(".*$", [(url_path_join(base, path) + "/?", h) for path, h in ROUTES])
    return holder

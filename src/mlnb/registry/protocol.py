"""What registry clients and the registry server say to each other.

A message is a 4-byte big-endian length followed by that many bytes of JSON.
A request is ``{"op": NAME, "args": {...}}``; the answer is ``{"ok": RESULT}``
or ``{"error": CLASS, "message": TEXT}`` where CLASS names an
:mod:`mlnb.errors` class.  JSON carries NaN and infinities as Python's
``json`` writes them (``NaN``, ``Infinity``): both ends are Python.

:data:`OPS` is the single table of operations; :func:`dispatch` runs one
against a :class:`~mlnb.registry.db.RegistryDB`.  The same table serves the
socket server and the in-process transport, so both behave identically.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import TYPE_CHECKING, Any, Callable

from mlnb.errors import InvalidArgument, MlnbError

if TYPE_CHECKING:
    from mlnb.registry.db import RegistryDB

__all__ = ["OPS", "Raw", "dispatch", "recv_message", "send_message"]

_HEADER = struct.Struct(">I")
MAX_MESSAGE = 1 << 30


class Raw(bytes):
    """A result that is already JSON text (sent without re-encoding)."""


# op name -> (function(db, **args), safe to send again after a lost answer)
OPS: dict[str, tuple[Callable[..., Any], bool]] = {
    "ping": (lambda db: {"path": db.path}, True),
    "changes": (lambda db: db.changes(), True),
    "get": (lambda db, ref: db.get(ref), True),
    "models": (lambda db: db.models(), True),
    "versions": (
        lambda db, name, since=0, epoch=None: Raw(db.versions_json(name, since, epoch)), True
    ),
    "best": (lambda db, name, metric, mode="max": db.best(name, metric, mode), True),
    "register": (lambda db, **a: db.register(**a), True),  # idempotent by request_id
    "set_alias": (lambda db, **a: db.set_alias(**a), True),  # no-op when already set
    "promote": (lambda db, **a: db.promote(**a), True),
    "remove_alias": (lambda db, **a: db.remove_alias(**a), False),
    "rollback": (lambda db, **a: db.rollback(**a), False),
    "retire": (lambda db, **a: db.retire(**a), False),
    "add_lineage": (lambda db, **a: db.add_lineage(**a), True),
    "record_evaluation": (lambda db, **a: db.record_evaluation(**a), True),  # by request_id
    "evaluations": (lambda db, **a: db.evaluations(**a), True),
    "set_gates": (lambda db, **a: db.set_gates(**a), True),  # no-op when already set
    "gates": (lambda db, name: db.gates(name), True),
    "lineage": (lambda db, ref: db.lineage(ref), True),
    "audit": (lambda db, name=None, limit=200: db.audit(name, limit), True),
    "storage_url": (lambda db, proposed=None: db.storage_url(proposed), True),
    "hold": (lambda db, request_id, shas: db.hold(request_id, shas), True),
    "release": (lambda db, request_id: db.release(request_id), True),
    "referenced": (lambda db: db.referenced(), True),
    "held": (lambda db: db.held(), True),
    "gc_begin": (lambda db, token, candidates: db.gc_begin(token, candidates), True),
    "gc_end": (lambda db, token: db.gc_end(token), True),
    "sql": (lambda db, query, limit=100_000: db.sql(query, limit), True),
}


def dispatch(db: RegistryDB, op: str, args: dict[str, Any]) -> Any:
    """Run *op* with *args* on *db*; an unknown op is :class:`InvalidArgument`."""
    entry = OPS.get(op)
    if entry is None:
        raise InvalidArgument(f"unknown registry operation {op!r}; is the server older than this client?")
    return entry[0](db, **args)


def encode_result(result: Any) -> bytes:
    """The answer to a successful request."""
    if isinstance(result, Raw):
        return b'{"ok":' + result + b"}"
    return json.dumps({"ok": result}, separators=(",", ":")).encode()


def encode_error(err: BaseException) -> bytes:
    """The answer to a failed request: the mlnb error class and message."""
    name = type(err).__name__ if isinstance(err, MlnbError) else "MlnbError"
    message = str(err) if isinstance(err, MlnbError) else (
        f"the registry server failed: {type(err).__name__}: {err} (a bug; see the server log)"
    )
    return json.dumps({"error": name, "message": message}).encode()


def send_message(sock: socket.socket, body: bytes) -> None:
    """Send one framed message."""
    sock.sendall(_HEADER.pack(len(body)) + body)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise ConnectionResetError("the registry connection closed mid-message")
        got += k
    return bytes(buf)


def recv_message(sock: socket.socket) -> bytes | None:
    """Receive one framed message; ``None`` when the peer closed between messages."""
    first = sock.recv(_HEADER.size)
    if not first:
        return None
    if len(first) < _HEADER.size:
        first += _recv_exact(sock, _HEADER.size - len(first))
    (size,) = _HEADER.unpack(first)
    if size > MAX_MESSAGE:
        raise ConnectionResetError(f"registry message of {size} bytes is over the limit")
    return _recv_exact(sock, size)

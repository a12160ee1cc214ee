"""How a client reaches its registry: a local server over a Unix socket, or in-process.

:class:`SocketTransport` connects to the registry server of a database file,
starting one when none answers.  Starting is serialised by an ``flock`` on
``<db>.start``: of several clients that find no server at once, the first
starts it and the others, once they get the lock, find it answering.

If the connection breaks (the server was killed, or left after being idle),
the client reconnects, starting a new server, and sends the request again
when that is safe: reads always, and writes that are idempotent
(a registration carries a request id the server remembers in the database).
A write that is not (``rollback``, ``retire``) is sent again only if the
break happened before the request went out; otherwise the caller gets
:class:`~mlnb.errors.RegistryUnavailable` and can check the audit log.

:class:`LocalTransport` runs the same operations on a
:class:`~mlnb.registry.db.RegistryDB` in this process (``:memory:``).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlnb.errors import RegistryUnavailable, from_wire
from mlnb.registry import protocol
from mlnb.registry.records import paused_gc

if TYPE_CHECKING:
    from mlnb.registry.db import RegistryDB

__all__ = ["LocalTransport", "SocketTransport"]

START_TIMEOUT = 30.0
# A refused, reset, missing or timed-out socket: all OSError subclasses.
_BROKEN = (OSError,)


def _decode(body: bytes) -> Any:
    if len(body) > 65536:
        with paused_gc():
            answer = json.loads(body)
    else:
        answer = json.loads(body)
    if "error" in answer:
        raise from_wire(answer["error"], answer["message"])
    return answer["ok"]


class LocalTransport:
    """Run operations on an in-process database (``:memory:`` registries)."""

    def __init__(self, db: RegistryDB) -> None:
        self.db = db

    def call(self, op: str, **args: Any) -> Any:
        """Run *op*; results are copied through JSON, exactly as over a socket."""
        result = protocol.dispatch(self.db, op, json.loads(json.dumps(args)))
        return _decode(protocol.encode_result(result))

    def close(self) -> None:
        """Close the in-process database."""
        self.db.close()


class SocketTransport:
    """A connection to the registry server of *db_path*, started when needed."""

    def __init__(self, db_path: str, idle: float = 600.0) -> None:
        from mlnb.registry.server import paths_for

        self.db_path = db_path
        self.idle = idle
        self.paths = paths_for(db_path)
        self._sock: socket.socket | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    # -- connecting ----------------------------------------------------------

    def _connect_once(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.paths["socket"]))
        except OSError:
            sock.close()
            raise
        return sock

    def _spawn(self) -> subprocess.Popen:
        # The server must import this very mlnb, even when it is not installed
        # (running from a source tree with PYTHONPATH=src).
        here = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
        log = open(self.paths["log"], "ab")
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "mlnb.registry.server", self.db_path,
                 "--idle", str(self.idle)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, close_fds=True,
                env={**os.environ, "PYTHONPATH": path},
            )
        finally:
            log.close()

    def _log_tail(self) -> str:
        try:
            lines = self.paths["log"].read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-5:])

    def _connect(self) -> socket.socket:
        try:
            return self._connect_once()
        except OSError:
            pass
        self.paths["start"].parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.paths["start"], os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            deadline = time.monotonic() + START_TIMEOUT
            proc: subprocess.Popen | None = None
            spawns = 0
            while time.monotonic() < deadline:
                try:
                    return self._connect_once()
                except OSError:
                    pass
                if proc is None or proc.poll() is not None:
                    # 0: it served and left; 3: another server holds the lock (it
                    # will answer soon); killed by a signal: start another.  Any
                    # other exit is a failure that starting again will not fix.
                    code = None if proc is None else proc.returncode
                    if code is not None and code > 0 and code != 3 or spawns >= 8:
                        raise RegistryUnavailable(
                            f"the registry server for {self.db_path} failed to start "
                            f"(exit {code}):\n{self._log_tail()}\n"
                            f"full log: {self.paths['log']}"
                        )
                    proc = self._spawn()
                    spawns += 1
                time.sleep(0.01)
            raise RegistryUnavailable(
                f"the registry server for {self.db_path} did not answer within "
                f"{START_TIMEOUT:.0f} s; see {self.paths['log']}"
            )
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # -- calling ---------------------------------------------------------------

    def call(self, op: str, **args: Any) -> Any:
        """Send one request and return its result, reconnecting when that is safe."""
        body = json.dumps({"op": op, "args": args}, separators=(",", ":")).encode()
        resend_ok = protocol.OPS[op][1] if op in protocol.OPS else False
        with self._lock:
            if self._pid != os.getpid():  # forked: the socket belongs to the parent
                self._sock, self._pid = None, os.getpid()
            for attempt in range(4):
                sent = False
                try:
                    if self._sock is None:
                        self._sock = self._connect()
                    protocol.send_message(self._sock, body)
                    sent = True
                    answer = protocol.recv_message(self._sock)
                    if answer is None:
                        raise ConnectionResetError("the registry server closed the connection")
                except _BROKEN as err:
                    self._drop()
                    if sent and not resend_ok:
                        raise RegistryUnavailable(
                            f"the registry server stopped while running {op}; it may or may "
                            "not have happened: check the audit log (mlnb audit NAME)"
                        ) from err
                    if attempt == 3:
                        raise RegistryUnavailable(
                            f"lost the registry server for {self.db_path} 4 times running "
                            f"{op}: {err}; see {self.paths['log']}"
                        ) from err
                    time.sleep(0.05 * attempt)
                    continue
                return _decode(answer)
        raise AssertionError("unreachable")

    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def close(self) -> None:
        """Close the connection (the server keeps running until idle)."""
        with self._lock:
            self._drop()

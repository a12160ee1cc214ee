"""The registry server: the one process that holds a registry file open.

Started on demand by the first client that finds none (see
:mod:`mlnb.registry.transport`), it listens on a Unix socket beside the
database (mode 0600), answers every kernel, CLI and Jupyter server of that
registry, and exits after ``MLNB_IDLE`` seconds without a request so the file
is released.  Run by hand with ``python -m mlnb.registry.server DB``.

Start-up is race-free: the server takes an exclusive ``flock`` on
``<db>.lock`` before touching the socket or the database and keeps it until
it exits; a second server finds the lock taken and leaves at once (exit 3).
The kernel drops the lock when the process dies, however it dies.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from pathlib import Path

from mlnb.errors import MlnbError
from mlnb.registry import protocol

__all__ = ["ALREADY_RUNNING", "main", "paths_for", "serve", "server_pid", "stop"]

ALREADY_RUNNING = 3
log = logging.getLogger("mlnb.registry.server")


def paths_for(db_path: str) -> dict[str, Path]:
    """The socket, lock and log files that belong to the registry file *db_path*.

    The socket sits beside the database unless that path is too long for a Unix
    socket (about 104 bytes); then it goes to a private ``/tmp/mlnb-<uid>`` folder.
    """
    import hashlib

    db = Path(db_path)
    sock = db.with_suffix(".sock")
    if len(str(sock).encode()) > 100:
        private = Path("/tmp") / f"mlnb-{os.getuid()}"
        private.mkdir(mode=0o700, exist_ok=True)
        st = private.stat()
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise PermissionError(f"{private} must be owned by you with mode 0700")
        sock = private / (hashlib.sha256(str(db).encode()).hexdigest()[:24] + ".sock")
    return {
        "socket": sock,
        "lock": db.with_suffix(".lock"),
        "start": db.with_suffix(".start"),
        "log": db.with_suffix(".log"),
    }


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        # Holds taken over this connection are dropped when it closes without
        # registering: the client died, and gc may take its uploads.
        held: set[str] = set()
        try:
            self._serve(held)
        finally:
            for request_id in held:
                self.server.db.release(request_id)

    def _serve(self, held: set[str]) -> None:
        sock: socket.socket = self.request
        srv = self.server
        while True:
            try:
                body = protocol.recv_message(sock)
            except OSError:
                return
            if body is None:
                return
            with srv.activity:
                srv.busy += 1
                srv.last_request = time.monotonic()
            try:
                try:
                    request = json.loads(body)
                    op, args = request["op"], request.get("args") or {}
                    answer = protocol.encode_result(protocol.dispatch(srv.db, op, args))
                    if op == "hold":
                        held.add(args["request_id"])
                    elif op in ("register", "release"):
                        held.discard(args.get("request_id"))
                except Exception as err:  # every failure goes back to the client
                    if not isinstance(err, MlnbError):
                        log.exception("request failed: %.200s", body)
                    answer = protocol.encode_error(err)
                protocol.send_message(sock, answer)
            except OSError:
                return
            finally:
                with srv.activity:
                    srv.busy -= 1
                    srv.last_request = time.monotonic()


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, path: str, db) -> None:  # noqa: ANN001
        self.db = db
        self.activity = threading.Lock()
        self.busy = 0
        self.last_request = time.monotonic()
        super().__init__(path, _Handler)


def serve(db_path: str, idle: float = 600.0) -> int:
    """Serve the registry *db_path* until idle for *idle* seconds; return the exit code."""
    from mlnb.registry.db import RegistryDB

    paths = paths_for(db_path)
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(paths["lock"], os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        return ALREADY_RUNNING
    os.ftruncate(lock_fd, 0)
    os.write(lock_fd, f"{os.getpid()}\n".encode())
    db = RegistryDB(db_path)
    sock_path = paths["socket"]
    try:
        sock_path.unlink()
    except FileNotFoundError:
        pass
    old_umask = os.umask(0o177)
    try:
        server = _Server(str(sock_path), db)
    finally:
        os.umask(old_umask)
    inode = sock_path.stat().st_ino
    log.info("serving %s on %s (pid %d)", db_path, sock_path, os.getpid())

    def watch() -> None:
        while True:
            time.sleep(min(1.0, max(idle / 4, 0.05)))
            with server.activity:
                quiet = time.monotonic() - server.last_request
                if server.busy == 0 and quiet > idle:
                    break
        log.info("idle for %.0f s; exiting", idle)
        server.shutdown()

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=watch, daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        # Stop accepting first, so no client talks to a closing database.
        try:
            if sock_path.stat().st_ino == inode:
                sock_path.unlink()
        except FileNotFoundError:
            pass
        server.server_close()
        with db.lock:
            db.close()
        os.close(lock_fd)
    return 0


def server_pid(db_path: str) -> int | None:
    """The pid of the server running for *db_path*, or None when none runs."""
    lock = paths_for(db_path)["lock"]
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # held: a server is alive, and wrote its pid there
            text = os.read(fd, 32).decode().strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def stop(db_path: str, timeout: float = 10.0, sig: int = signal.SIGTERM,
         force: bool = False) -> bool:
    """Ask the server of *db_path* to exit (SIGTERM) and wait; True if one was stopped.

    With *force*, a server still running after *timeout* is killed (SIGKILL)
    instead of raising :class:`TimeoutError`.
    """
    pid = server_pid(db_path)
    if pid is None:
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server_pid(db_path) is None:
            return True
        time.sleep(0.02)
    if force:
        return stop(db_path, timeout, signal.SIGKILL)
    raise TimeoutError(f"the registry server {pid} did not exit within {timeout} s")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``python -m mlnb.registry.server DB [--idle SECONDS]``."""
    parser = argparse.ArgumentParser(prog="python -m mlnb.registry.server")
    parser.add_argument("db", help="registry database file")
    parser.add_argument("--idle", type=float, default=600.0, help="seconds idle before exiting")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format="%(asctime)s %(process)d %(levelname)s %(message)s",
    )
    return serve(args.db, args.idle)


if __name__ == "__main__":
    sys.exit(main())

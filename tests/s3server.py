"""A real S3 endpoint for tests: ``moto_server`` on 127.0.0.1, started and stopped here.

Use it from a session-scoped fixture::

    with MotoServer() as server:
        yield server

``server.storage_options`` are what ``BlobStore``/s3fs need, and
``server.new_bucket()`` makes an empty bucket.  The server needs the AWS
variables in :data:`AWS_ENV` in the environment of the process that talks to
it; :meth:`MotoServer.__enter__` sets them and :meth:`MotoServer.__exit__`
restores the old values.  Do not pass ``client_kwargs={"region_name": ...}``:
with it, bucket creation fails with InvalidLocationConstraint.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

AWS_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


def moto_server_executable() -> str | None:
    """The ``moto_server`` script beside this interpreter, else on PATH, else None."""
    beside = Path(sys.executable).parent / "moto_server"
    if beside.exists():
        return str(beside)
    return shutil.which("moto_server")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """One ``moto_server`` process on a free local port."""

    def __init__(self, startup_timeout: float = 30.0) -> None:
        self.startup_timeout = startup_timeout
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._saved_env: dict[str, str | None] = {}

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage_options(self) -> dict[str, Any]:
        """s3fs options that reach this server (region comes from the environment)."""
        return {"key": "testing", "secret": "testing", "endpoint_url": self.endpoint_url}

    def s3fs(self, **options: Any) -> Any:
        """A fresh ``s3fs.S3FileSystem`` on this server."""
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options, **options)

    def new_bucket(self, prefix: str = "mlnb-test") -> str:
        """Create an empty bucket with a unique name and return the name."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.s3fs().mkdir(name)
        return name

    def start(self) -> None:
        exe = moto_server_executable()
        if exe is None:
            raise RuntimeError('moto_server not found; pip install "moto[server]"')
        for key, value in AWS_ENV.items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        self.port = _free_port()
        self.process = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **AWS_ENV},
        )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with code {self.process.returncode}")
            try:
                with urllib.request.urlopen(self.endpoint_url + "/", timeout=1):
                    return
            except urllib.error.HTTPError:
                return  # it answered, if only with an error status
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"moto_server did not answer on port {self.port} within "
                        f"{self.startup_timeout} s"
                    ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

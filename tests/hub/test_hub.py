"""The REST API behind a real JupyterHub: through its proxy, with the hub's own auth.

A JupyterHub on 127.0.0.1 (dummy authenticator, local-process spawner, the
configurable-http-proxy from npm) spawns a single-user server for ``alice`` with
mlnb installed as a user has it.  A hub API token then reaches the sidebar's API
at ``/user/alice/mlnb/api/`` through the proxy; without one, nothing is served.

Needs ``jupyterhub`` (pip, in the dev extra) and ``configurable-http-proxy``
(npm, installed by ``make test`` into ``.cache/node``); skipped without them,
except under ``CI`` where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

import mlnb

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
CHP = Path(os.environ.get("MLNB_CHP", ROOT / ".cache/node/node_modules/.bin/configurable-http-proxy"))


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required when CI is set)", pytrace=False)
    pytest.skip(reason)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect to the login page is an answer, not something to follow


_NO_REDIRECT = urllib.request.build_opener(_NoRedirect)


def _call(url: str, token: str | None = None, method: str = "GET", body: dict | None = None):
    """(status, parsed JSON or None) of one request; status 0 when nothing answers."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"token {token}")

    try:
        with _NO_REDIRECT.open(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as err:
        text = err.read()
        try:
            return err.code, json.loads(text)
        except ValueError:
            return err.code, None
    except OSError:  # not listening yet
        return 0, None


@pytest.fixture
def hub(tmp_path, home):
    """A running JupyterHub; yields (public URL, admin token)."""
    if shutil.which("jupyterhub", path=str(Path(sys.executable).parent)) is None:
        _missing("jupyterhub is not installed: pip install -e '.[dev]'")
    if not CHP.exists():
        _missing(f"no configurable-http-proxy at {CHP}: make install-dev")
    port, hub_port, api_port = _port(), _port(), _port()
    token = uuid.uuid4().hex
    bindir = Path(sys.executable).parent
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(f"""
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = [{str(CHP)!r}]
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.spawner_class = "simple"
c.JupyterHub.db_url = "sqlite:///{tmp_path / 'hub.sqlite'}"
c.JupyterHub.cookie_secret_file = {str(tmp_path / 'cookie_secret')!r}
c.JupyterHub.pid_file = {str(tmp_path / 'hub.pid')!r}
c.Spawner.cmd = [{str(bindir / 'jupyterhub-singleuser')!r}]
c.Spawner.args = ["--allow-root"]
c.Spawner.notebook_dir = {str(tmp_path)!r}
c.Spawner.environment = {{"MLNB_HOME": {str(home)!r}}}
c.Spawner.start_timeout = 60
c.JupyterHub.services = [{{"name": "tester", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{"name": "tester", "services": ["tester"],
    "scopes": ["admin:users", "admin:servers", "access:servers", "read:users"]}}]
""")
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = open(tmp_path / "hub.log", "w+b")
    proc = subprocess.Popen([str(bindir / "jupyterhub"), "-f", str(config)], cwd=tmp_path,
                            env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while _call(f"{url}/hub/api/", token)[0] != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail("JupyterHub did not start:\n" + log.read().decode()[-4000:])
            time.sleep(0.25)
        yield url, token, log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _spawn(url: str, token: str, log) -> None:
    assert _call(f"{url}/hub/api/users/alice", token, "POST", {})[0] in (201, 409)
    assert _call(f"{url}/hub/api/users/alice/server", token, "POST", {})[0] in (201, 202)
    deadline = time.monotonic() + 90
    while True:
        status, user = _call(f"{url}/hub/api/users/alice", token)
        server = (user or {}).get("servers", {}).get("", {})
        if status == 200 and server.get("ready"):
            return
        if time.monotonic() > deadline:
            log.seek(0)
            pytest.fail("alice's server did not start:\n" + log.read().decode()[-4000:])
        time.sleep(0.5)


def test_the_api_works_behind_jupyterhubs_proxy_with_hub_auth(hub, home, tmp_path):
    url, token, log = hub
    reg = mlnb.Registry(home)
    f = tmp_path / "w.bin"
    for i in (1, 2):
        f.write_text(str(i))
        reg.register("toy", f, metrics={"val_acc": 0.8 + i / 100})
    reg.promote("toy:1")
    _spawn(url, token, log)
    api = f"{url}/user/alice/mlnb/api"

    status, data = _call(f"{api}/models", token)
    assert status == 200, data
    assert [(m["name"], m["aliases"]) for m in data["models"]] == [("toy", {"production": 1})]

    status, data = _call(f"{api}/models/toy/versions/2/promote", token, "POST",
                          {"reason": "through the hub"})
    assert status == 200, data
    assert reg.get("toy@production").version == 2
    entry = reg.audit("toy")[0]
    # written by alice's server as alice: the hub sets JUPYTERHUB_USER, mlnb's default user
    assert (entry.user, entry.reason) == ("alice", "through the hub")

    # No hub credentials: the proxy passes the request, the server refuses it.
    assert _call(f"{api}/models", None)[0] == 403
    assert _call(f"{api}/models/toy/versions/1/promote", None, "POST", {})[0] == 403
    # Nor with a token the hub never issued.
    assert _call(f"{api}/models", uuid.uuid4().hex)[0] == 403
    assert reg.get("toy@production").version == 2
    reg.close()

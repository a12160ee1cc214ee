"""Who may do what is Jupyter's authorizer's call: mlnb asks it for ``read`` and ``write``."""

from __future__ import annotations

import pytest
from jupyter_server.auth import Authorizer
from tornado.httpclient import HTTPClientError

import mlnb


class ReadOnly(Authorizer):
    """Everyone may read the registry through Jupyter; no one may change it."""

    def is_authorized(self, handler, user, action, resource):
        return not (resource == "mlnb" and action == "write")


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"mlnb": True}, "authorizer_class": ReadOnly}}


async def test_a_read_only_user_can_browse_but_not_promote(home, tmp_path, monkeypatch, jp_fetch):
    monkeypatch.setenv("MLNB_HOME", str(home))
    reg = mlnb.Registry(home)
    f = tmp_path / "w.bin"
    for i in (1, 2):
        f.write_text(str(i))
        reg.register("toy", f)
    reg.promote("toy:2")
    listed = await jp_fetch("mlnb", "api", "models", "toy", "versions")
    assert listed.code == 200
    for action in ("promote", "retire"):
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("mlnb", "api", "models", "toy", "versions", "1", action,
                           method="POST", body="{}")
        assert info.value.code == 403
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("mlnb", "api", "models", "toy", "rollback", method="POST", body="{}")
    assert info.value.code == 403
    assert reg.get("toy@production").version == 2 and reg.get("toy:1").status == "active"
    reg.close()

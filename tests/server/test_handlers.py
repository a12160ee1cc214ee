"""The REST API under {base_url}mlnb/api/, through a real Jupyter server (pytest-jupyter).

The server is jupyter_server itself with mlnb's extension enabled by config, as
an installed wheel enables it; the registry behind it is a real DuckDB file
reached through its registry server.  The base URL is pytest-jupyter's
``/a%40b/``, so every route is also checked under a non-root, escaped prefix.
"""

from __future__ import annotations

import json
from urllib.parse import unquote

import pytest
from tornado.httpclient import HTTPClientError

import mlnb


def _strict(text: bytes) -> object:
    """Parse as strict JSON: NaN or Infinity tokens fail."""
    def refuse(token: str) -> object:
        raise AssertionError(f"not valid JSON: {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def seeded(home, tmp_path, monkeypatch):
    """A registry with ``toy`` (3 versions, production on 2, a NaN metric) and ``evil``."""
    monkeypatch.setenv("MLNB_HOME", str(home))
    reg = mlnb.Registry(home)
    f = tmp_path / "w.bin"
    for i, (acc, loss) in enumerate([(0.81, 0.6), (0.9, 0.4), (float("nan"), float("inf"))], 1):
        f.write_text(f"weights {i}")
        reg.register("toy", f, metrics={"val_acc": acc, "loss": loss}, params={"lr": 0.01 * i},
                     tags={"team": "vision"}, description=f"try {i}",
                     parent=f"toy:{i - 1}" if i > 1 else None)
    reg.promote("toy:2", reason="best so far")
    f.write_text("evil")
    reg.register("evil", f, description="<img src=x onerror=alert(1)>",
                 metrics={"acc": 0.5})
    yield reg
    reg.close()


async def _get(jp_fetch, *path, **params):
    response = await jp_fetch("mlnb", "api", *path, params=params or None)
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    return _strict(response.body)


async def _post(jp_fetch, *path, body=None, raw=None):
    response = await jp_fetch("mlnb", "api", *path, method="POST",
                              body=raw if raw is not None else json.dumps(body or {}))
    return _strict(response.body)


async def _error(jp_fetch, *path, method="GET", body=None, params=None):
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("mlnb", "api", *path, method=method, body=body, params=params)
    return info.value.code, _strict(info.value.response.body)


async def test_status_names_the_registry_and_the_user(seeded, jp_fetch, home):
    data = await _get(jp_fetch, "status")
    assert data["registry"] == str(home / "registry.duckdb")
    assert data["user"] == "tester" and data["mlnb"] == mlnb.__version__
    assert data["token"] == seeded.changes()


async def test_models_list_with_aliases_and_the_main_metric_of_production(seeded, jp_fetch):
    data = await _get(jp_fetch, "models")
    assert [m["name"] for m in data["models"]] == ["evil", "toy"]
    toy = data["models"][1]
    assert toy["versions"] == 3 and toy["latest"] == 3
    assert toy["aliases"] == {"production": 2}
    # production holds 2, so the model is summed up by 2, not by the newer 3
    assert (toy["main_metric"], toy["main_ref"], toy["main_value"]) == ("val_acc", "toy:2", 0.9)
    evil = await _get(jp_fetch, "models", "evil", "versions")
    assert evil["versions"][0]["description"] == "<img src=x onerror=alert(1)>"  # data, as sent


async def test_versions_newest_first_with_badges_best_marks_and_non_finite_values(seeded, jp_fetch):
    data = await _get(jp_fetch, "models", "toy", "versions")
    assert data["main_metric"] == "val_acc" and data["metrics"] == ["loss", "val_acc"]
    rows = data["versions"]
    assert [r["ref"] for r in rows] == ["toy:3", "toy:2", "toy:1"]
    v3, v2, _ = rows
    assert v2["aliases"] == ["production"] and v3["aliases"] == []
    assert v3["metrics"] == {"val_acc": "nan", "loss": "inf"}  # the documented encoding
    assert v3["main_value"] == "nan"
    assert sorted(v2["best"]) == ["loss", "val_acc"]
    assert v2["snippets"] == {"load": "m = %mlnb load toy:2", "show": "%mlnb show toy:2"}
    assert v2["parent"] == "toy:1" and v2["description"] == "try 2"


async def test_a_version_in_full(seeded, jp_fetch):
    seeded._call("add_lineage", ref="toy:2", kind="converted_from", other="evil:1",
                 user="tester", details={"opset": 17})
    data = await _get(jp_fetch, "models", "toy", "versions", "2")
    v = data["version"]
    assert v["params"] == {"lr": 0.02} and v["tags"] == {"team": "vision"}
    assert [f["path"] for f in v["files"]] == ["w.bin"]
    assert v["files"][0]["sha256"] == seeded.get("toy:2").files[0].sha256
    assert {"source": "toy:2", "kind": "parent", "target": "toy:1", "details": None} \
        in data["lineage"]
    assert {"source": "toy:2", "kind": "converted_from", "target": "evil:1",
            "details": {"opset": 17}} in data["lineage"]
    assert data["evaluations"] == []
    actions = [(e["action"], e["version"] or e["to_version"]) for e in data["audit"]]
    assert ("promote", 2) in actions and ("register", 2) in actions
    assert all(2 in (e["version"], e["from_version"], e["to_version"]) for e in data["audit"])


async def test_a_version_lists_its_stored_evaluations_newest_first(seeded, jp_fetch):
    fp = "e5" * 32
    old = seeded.record_evaluation("toy:2", data_fingerprint=fp, task="classification",
                                   metrics={"accuracy": 0.8}, details={"n": 10})
    new = seeded.record_evaluation(
        "toy:2", data_fingerprint=fp, task="classification",
        metrics={"accuracy": {"value": 0.9, "lower": 0.85, "upper": 0.94},
                 "log_loss": {"value": float("nan"), "note": "<b>odd</b>"}},
        details={"n": 500, "device": "cpu"})
    seeded.record_evaluation("toy:3", data_fingerprint=fp, task="classification",
                             metrics={"accuracy": 0.7})
    data = await _get(jp_fetch, "models", "toy", "versions", "2")
    assert [e["id"] for e in data["evaluations"]] == [new.id, old.id]
    first = data["evaluations"][0]
    assert first == {
        "id": new.id, "data": f"data:{fp[:12]}", "data_fingerprint": fp,
        "task": "classification",
        "metrics": {"accuracy": {"value": 0.9, "lower": 0.85, "upper": 0.94, "note": ""},
                    "log_loss": {"value": "nan", "lower": None, "upper": None,
                                 "note": "<b>odd</b>"}},
        "details": {"n": 500, "device": "cpu"},
        "created_at": new.created_at.isoformat(), "created_by": "tester"}
    assert {"source": "toy:2", "kind": "evaluated_on", "target": f"data:{fp[:12]}",
            "details": {"data_fingerprint": fp, "evaluation_id": new.id, "evaluations": 2,
                        "task": "classification"}} in data["lineage"]


async def test_promote_from_the_api_moves_the_alias_and_is_audited(seeded, jp_fetch):
    before = seeded.changes()
    data = await _post(jp_fetch, "models", "toy", "versions", "1", "promote",
                       body={"reason": "rolled by hand"})
    assert data["version"]["ref"] == "toy:1" and data["version"]["aliases"] == ["production"]
    assert data["token"] != before and data["token"] == seeded.changes()
    assert seeded.get("toy@production").version == 1  # seen from outside the server
    entry = seeded.audit("toy")[0]
    assert (entry.action, entry.user, entry.reason) == ("promote", "tester", "rolled by hand")
    assert (entry.from_version, entry.to_version) == (2, 1)
    staging = await _post(jp_fetch, "models", "toy", "versions", "3", "promote",
                          body={"alias": "staging"})
    assert staging["version"]["aliases"] == ["staging"]


async def test_rollback_and_retire(seeded, jp_fetch):
    await _post(jp_fetch, "models", "toy", "versions", "1", "promote")
    back = await _post(jp_fetch, "models", "toy", "rollback", body={"reason": "oops"})
    assert back["version"]["ref"] == "toy:2" and back["version"]["aliases"] == ["production"]
    gone = await _post(jp_fetch, "models", "toy", "versions", "3", "retire")
    assert gone["version"]["status"] == "retired"
    assert seeded.get("toy:3").status == "retired"
    code, err = await _error(jp_fetch, "models", "toy", "versions", "3", "retire",
                             method="POST", body="{}")
    assert (code, err["error"]) == (409, "Conflict") and "already retired" in err["message"]


async def test_audit_log_for_one_model_or_all(seeded, jp_fetch):
    everything = await _get(jp_fetch, "audit")
    assert {e["model"] for e in everything["entries"]} == {"toy", "evil"}
    ids = [e["id"] for e in everything["entries"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    toy = await _get(jp_fetch, "audit", model="toy", limit="2")
    assert len(toy["entries"]) == 2 and {e["model"] for e in toy["entries"]} == {"toy"}


@pytest.mark.parametrize("path, method, body, params, status, error", [
    (("models", "nope", "versions"), "GET", None, None, 404, "NotFound"),
    (("models", "toy", "versions", "9"), "GET", None, None, 404, "NotFound"),
    (("models", "bad name!", "versions"), "GET", None, None, 400, "InvalidName"),
    (("models", "toy", "versions", "0"), "GET", None, None, 400, "InvalidArgument"),
    (("models", "toy", "versions", "two"), "GET", None, None, 400, "InvalidArgument"),
    (("audit",), "GET", None, {"limit": "0"}, 400, "InvalidArgument"),
    (("audit",), "GET", None, {"model": "../etc"}, 400, "InvalidName"),
    (("models", "toy", "versions", "1", "promote"), "POST", "{not json", None, 400,
     "InvalidArgument"),
    (("models", "toy", "versions", "1", "promote"), "POST", "[1]", None, 400, "InvalidArgument"),
    (("models", "toy", "versions", "1", "promote"), "POST", '{"alias": "x y"}', None, 400,
     "InvalidName"),
    (("models", "toy", "versions", "1", "promote"), "POST", '{"force": "yes"}', None, 400,
     "InvalidArgument"),
    (("models", "toy", "versions", "1", "retire"), "POST", '{"alias": "staging"}', None, 400,
     "InvalidArgument"),
    (("models", "toy", "versions", "1", "promote"), "POST", '{"reason": 3}', None, 400,
     "InvalidArgument"),
    (("models", "ghost", "rollback"), "POST", "{}", None, 404, "NotFound"),
])
async def test_bad_requests_get_a_status_and_a_json_error(seeded, jp_fetch, path, method, body,
                                                          params, status, error):
    before = seeded.changes()
    code, err = await _error(jp_fetch, *path, method=method, body=body, params=params)
    assert (code, err["error"]) == (status, error)
    assert err["message"] and "\n" not in err["message"]
    assert seeded.changes() == before  # nothing changed


async def test_a_misspelt_model_gets_a_suggestion(seeded, jp_fetch):
    code, err = await _error(jp_fetch, "models", "tyo", "versions")
    assert code == 404 and "did you mean 'toy'" in err["message"]


async def test_rollback_with_nothing_to_go_back_to_is_a_conflict(seeded, jp_fetch):
    code, err = await _error(jp_fetch, "models", "evil", "rollback", method="POST", body="{}")
    assert (code, err["error"]) == (409, "Conflict")
    assert err["message"] == "evil@production is not set, so there is nothing to roll back"


ROUTES = [
    ("GET", "status"), ("GET", "changes"), ("GET", "models"), ("GET", "models/toy/versions"),
    ("GET", "models/toy/versions/1"), ("GET", "audit"),
    ("POST", "models/toy/versions/1/promote"), ("POST", "models/toy/versions/1/retire"),
    ("POST", "models/toy/rollback"),
]


def _url(base_url, path):
    return f"{base_url}mlnb/api/{path}"


async def test_every_route_refuses_a_request_without_credentials(seeded, http_server_client,
                                                                 jp_base_url):
    client = http_server_client
    before = seeded.changes()
    for method, path in ROUTES:
        response = await client.fetch(_url(jp_base_url, path), method=method,
                                      body="{}" if method == "POST" else None,
                                      raise_error=False)
        assert response.code == 403, (method, path, response.code)
    assert seeded.changes() == before and seeded.get("toy@production").version == 2


async def test_a_cookie_session_needs_the_xsrf_token_to_change_anything(
        seeded, jp_serverapp, http_server_client, jp_base_url):
    client = http_server_client
    token = jp_serverapp.identity_provider.token
    # Logging in through the browser: a page sets _xsrf, the token in the URL the login cookie.
    login = await client.fetch(f"{jp_base_url}login",
                               raise_error=False)
    cookies = [c.split(";")[0] for c in login.headers.get_list("Set-Cookie")]
    status = await client.fetch(_url(jp_base_url, f"status?token={token}"),
                                headers={"Cookie": "; ".join(cookies)})
    cookies += [c.split(";")[0] for c in status.headers.get_list("Set-Cookie")]
    jar = dict(c.split("=", 1) for c in cookies)
    assert "_xsrf" in jar and len(jar) >= 2, jar
    cookie = {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}
    url = _url(jp_base_url, "models/toy/versions/1/promote")

    reads = await client.fetch(_url(jp_base_url, "models"), headers=cookie)
    assert reads.code == 200  # the cookie alone authenticates reads
    refused = await client.fetch(url, method="POST", body="{}", headers=cookie,
                                 raise_error=False)
    assert refused.code == 403 and b"_xsrf" in refused.body
    assert seeded.get("toy@production").version == 2
    allowed = await client.fetch(url, method="POST", body="{}",
                                 headers={**cookie, "X-XSRFToken": unquote(jar["_xsrf"])})
    assert allowed.code == 200 and seeded.get("toy@production").version == 1


async def test_polling_changes_is_not_activity_but_reading_models_is(seeded, jp_fetch,
                                                                     jp_serverapp):
    settings = jp_serverapp.web_app.settings
    await _get(jp_fetch, "models")
    seen = settings["api_last_activity"]
    for _ in range(3):
        token = (await _get(jp_fetch, "changes"))["token"]
    assert settings["api_last_activity"] == seen  # JupyterHub's culler still sees idleness
    assert token == seeded.changes()
    seeded.promote("toy:1")  # a change from a kernel
    assert (await _get(jp_fetch, "changes"))["token"] != token


async def test_many_requests_at_once_all_answer(seeded, jp_fetch):
    import asyncio

    answers = await asyncio.gather(*[
        _get(jp_fetch, *path) for path in [("models",), ("changes",), ("audit",),
                                           ("models", "toy", "versions")] * 10
    ])
    assert len({a["token"] for a in answers}) == 1

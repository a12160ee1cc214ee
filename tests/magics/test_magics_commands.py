"""%mlnb commands, run through a real IPython shell as a notebook cell runs them."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

import mlnb


@pytest.fixture
def weights(tmp_path):
    def write(text: str):
        path = tmp_path / "w.bin"
        path.write_text(text)
        return str(path)

    return write


def test_register_from_a_variable_and_from_a_path(ip, weights, make_mlp):
    import torch

    ip.user_ns["model"] = make_mlp(0)
    v = ip.run_line_magic(
        "mlnb", "register mnist-mlp model --metric val_acc=0.97 --param lr=0.001 "
        "--param layers=[4,8] --tag team=vision --description 'first try'")
    assert (v.ref, dict(v.metrics), dict(v.params), dict(v.tags), v.description) == (
        "mnist-mlp:1", {"val_acc": 0.97}, {"lr": 0.001, "layers": [4, 8]},
        {"team": "vision"}, "first try")
    v2 = ip.run_line_magic("mlnb", f"register mnist-mlp {weights('raw')} --parent mnist-mlp:1")
    assert (v2.ref, v2.format, v2.parent) == ("mnist-mlp:2", "files", "mnist-mlp:1")
    m = ip.run_line_magic("mlnb", "load mnist-mlp:1 --device cpu")
    x = torch.randn(3, 4)
    assert torch.equal(m(x), ip.user_ns["model"].eval()(x))


def test_assignment_forms_work_like_in_a_notebook(ip, weights):
    ip.run_line_magic("mlnb", f"register m {weights('a')}")
    ip.run_cell("v = %mlnb show m:1", store_history=False).raise_error()
    assert ip.user_ns["v"].ref == "m:1"
    ip.user_ns["which"] = "m:1"
    ip.run_cell("w = %mlnb show $which", store_history=False).raise_error()
    ip.run_cell("u = %mlnb show {which}", store_history=False).raise_error()
    assert ip.user_ns["w"].ref == ip.user_ns["u"].ref == "m:1"


def test_versions_filter_sort_limit(ip, weights):
    for i, acc in enumerate([0.8, 0.95, float("nan"), 0.9]):
        ip.run_line_magic("mlnb", f"register m {weights(str(i))} --metric acc={acc}")
    ip.run_line_magic("mlnb", "promote m:2")
    newest_first = [v.version for v in ip.run_line_magic("mlnb", "versions m")]
    assert newest_first == [4, 3, 2, 1]
    best_first = [v.version for v in ip.run_line_magic("mlnb", "versions m --sort acc")]
    assert best_first == [2, 4, 1, 3]  # the NaN sorts last
    assert [v.version for v in ip.run_line_magic("mlnb", "versions m --sort acc --asc --limit 2")] == [1, 4]
    assert [v.version for v in ip.run_line_magic("mlnb", "versions m --alias production")] == [2]


def test_lifecycle_commands(ip, weights):
    for i in range(3):
        ip.run_line_magic("mlnb", f"register m {weights(str(i))}")
    ip.run_line_magic("mlnb", "promote m:1 --reason first")
    assert ip.run_line_magic("mlnb", "promote m:2 production").version == 2
    assert ip.run_line_magic("mlnb", "rollback m").version == 1
    assert ip.run_line_magic("mlnb", "alias m:3 champion").aliases == ("champion",)
    assert ip.run_line_magic("mlnb", "retire m:3").status == "retired"
    actions = [e.action for e in ip.run_line_magic("mlnb", "audit m")]
    assert actions[:4] == ["retire", "set_alias", "rollback", "promote"]
    edges = ip.run_line_magic("mlnb", "lineage m:1").edges
    assert edges == ()


def test_sql_as_a_cell_and_as_a_line(ip, weights):
    ip.run_line_magic("mlnb", f"register a {weights('1')} --metric acc=0.5")
    ip.run_line_magic("mlnb", f"register b {weights('2')} --metric acc=0.7")
    df = ip.run_cell_magic("mlnb", "sql", "select name, value from metrics\norder by value desc")
    assert df.to_dict("records") == [{"name": "b", "value": 0.7}, {"name": "a", "value": 0.5}]
    one = ip.run_line_magic("mlnb", "sql select count(*) as n from versions")
    assert one["n"][0] == 2


def test_maintenance_and_bundles(ip, weights, tmp_path):
    ip.run_line_magic("mlnb", f"register m {weights('x')}")
    assert ip.run_line_magic("mlnb", "fsck").ok
    assert ip.run_line_magic("mlnb", "gc --dry-run").dry_run
    bundle = tmp_path / "m.tar.gz"
    ip.run_line_magic("mlnb", f"export m:1 {bundle}")
    assert ip.run_line_magic("mlnb", f"import {bundle} --name copy").ref == "copy:1"


def test_mlnb_errors_are_one_line_usage_errors(ip, weights, capsys):
    ip.run_line_magic("mlnb", f"register mnist-mlp {weights('x')}")
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("mlnb", "show mnsit-mlp")
    assert type(info.value) is UsageError  # exactly UsageError: IPython hides the traceback
    assert str(info.value).startswith("NotFound: no model 'mnsit-mlp'; did you mean 'mnist-mlp'?")
    result = ip.run_cell("%mlnb show mnsit-mlp", store_history=False)
    assert isinstance(result.error_in_exec, UsageError)
    out = capsys.readouterr()
    shown = (out.out + out.err).strip().splitlines()
    assert shown == ["UsageError: NotFound: no model 'mnsit-mlp'; did you mean 'mnist-mlp'?; "
                     "list them with `mlnb models` or reg.models()"]


@pytest.mark.parametrize("line, match", [
    ("promote ../etc", "InvalidName"),
    ("frobnicate", "unknown command 'frobnicate'"),
    ("shwo m", "did you mean 'show'"),
    ("register m x --metric acc", "KEY=VALUE"),
    ("versions", "the following arguments are required: name"),
    ("show 'unclosed", "No closing quotation"),
])
def test_bad_input_is_a_usage_error(ip, line, match):
    with pytest.raises(UsageError, match=match):
        ip.run_line_magic("mlnb", line)


def test_a_bug_keeps_its_traceback(ip, monkeypatch):
    from mlnb.magics import commands

    def broken(reg, args, ns):
        raise ZeroDivisionError("a bug")

    old = commands.COMMANDS["models"]
    monkeypatch.setitem(commands.COMMANDS, "models", commands.Command(old.parser, broken))
    with pytest.raises(ZeroDivisionError):
        ip.run_line_magic("mlnb", "models")


def test_help_for_the_magic_and_every_command(ip, capsys):
    assert ip.run_line_magic("mlnb", "--help") is None
    text = capsys.readouterr().out
    from mlnb.magics.commands import COMMANDS

    for name in COMMANDS:
        assert f"  {name} " in text
        assert ip.run_line_magic("mlnb", f"{name} --help") is None
        assert capsys.readouterr().out.startswith(f"usage: %mlnb {name}")


def test_only_sql_takes_a_cell(ip):
    with pytest.raises(UsageError, match="only 'sql' takes a cell"):
        ip.run_cell_magic("mlnb", "models", "body")


def test_every_mlnb_error_class_gets_the_one_line_treatment(ip, monkeypatch):
    from mlnb.magics import commands

    old = commands.COMMANDS["fsck"]
    for cls in (mlnb.NotFound, mlnb.Conflict, mlnb.IntegrityError, mlnb.HoldExpired):
        def raiser(reg, args, ns, cls=cls):
            raise cls("boom")

        monkeypatch.setitem(commands.COMMANDS, "fsck", commands.Command(old.parser, raiser))
        with pytest.raises(UsageError, match=f"^{cls.__name__}: boom$"):
            ip.run_line_magic("mlnb", "fsck")


def test_diff_shows_only_what_changed_with_deltas(ip, weights):
    ip.run_line_magic("mlnb", f"register m {weights('a')} --metric acc=0.80 --param lr=0.1 --tag t=x")
    ip.run_line_magic("mlnb", f"register m {weights('b')} --metric acc=0.85 --param lr=0.1 --tag t=y")
    d = ip.run_line_magic("mlnb", "diff m:1 m:2")
    assert (d.a, d.b) == ("m:1", "m:2")
    assert set(d.metrics) == {"acc"} and abs(d.metrics["acc"].delta - 0.05) < 1e-12
    assert d.params == {} and set(d.tags) == {"t"} and set(d.files) == {"w.bin"}
    html = d._repr_html_()
    assert "acc" in html and "+0.05" in html and "lr" not in html


def test_results_render_as_html_in_the_notebook(ip, weights):
    ip.run_line_magic("mlnb", f"register churn {weights('a')} --metric acc=0.9 "
                      "--description '<img src=x onerror=alert(1)>'")
    ip.run_line_magic("mlnb", "promote churn:1")
    fmt = ip.display_formatter.format
    for line, expect in [("models", "churn"), ("versions churn", "@production"),
                         ("show churn:1", "&lt;img src=x onerror=alert(1)&gt;"),
                         ("audit churn", "promote"), ("lineage churn:1", "churn:1")]:
        data, _ = fmt(ip.run_line_magic("mlnb", line))
        assert "text/plain" in data and expect in data["text/html"], line
        assert "<img" not in data["text/html"]

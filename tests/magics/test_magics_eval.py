"""%mlnb eval, compare, gates and promote --force, through a real IPython shell."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

torch = pytest.importorskip("torch")


def blobs(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.tensor([[-1.0, -1.0], [1.0, 1.0]])[y] + 1.2 * torch.randn(n, 2, generator=g)
    return x, y


def fitted(epochs: int, seed: int = 0):
    """A small classifier; more epochs, better accuracy on the blobs."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    if epochs:
        x, y = blobs(512, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        for _ in range(epochs):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return model.eval()


@pytest.fixture
def shell(ip):
    """Two registered versions: toy:1 untrained (about chance), toy:2 trained; data in `val`."""
    ip.user_ns.update(weak=fitted(0), strong=fitted(60), val=blobs(2000, 7))
    ip.run_line_magic("mlnb", "register toy weak")
    ip.run_line_magic("mlnb", "register toy strong")
    return ip


def mlnb(ip, line):
    return ip.run_line_magic("mlnb", line)


def test_eval_stores_an_evaluation_with_intervals(shell):
    ev = mlnb(shell, "eval toy:2 --data val --n-bootstrap 200")
    acc = ev["accuracy"]
    assert acc.lower < acc.value < acc.upper and acc.value > 0.8
    reg = shell.magics_manager.registry["MlnbMagics"].registry
    [stored] = reg.evaluations("toy:2")
    assert stored.metrics["accuracy"].value == pytest.approx(acc.value)
    assert "accuracy" in repr(ev) and "<svg" in ev._repr_html_()


def test_gates_block_promotion_until_an_evaluation_passes(shell):
    gates = mlnb(shell, "gates toy --set 'accuracy >= 0.8'")
    assert gates.gates == ("accuracy >= 0.8",)
    assert "accuracy &gt;= 0.8" in gates._repr_html_()
    with pytest.raises(UsageError, match=r"^Conflict: cannot promote toy:1 to production: toy:1 "
                                         r"has no evaluation"):
        mlnb(shell, "promote toy:1")
    failing = mlnb(shell, "eval toy:1 --data val --n-bootstrap 100")
    assert failing.passed is False
    with pytest.raises(UsageError, match=r"^Conflict: cannot promote toy:1"):
        mlnb(shell, "promote toy:1")
    with pytest.raises(UsageError, match=r"reason"):
        mlnb(shell, "promote toy:1 --force")
    forced = mlnb(shell, "promote toy:1 --force --reason 'hotfix, checked by hand'")
    assert forced.ref == "toy:1" and "production" in forced.aliases
    assert mlnb(shell, "eval toy:2 --data val --n-bootstrap 100").passed is True
    assert "production" in mlnb(shell, "promote toy:2").aliases
    assert mlnb(shell, "gates toy --clear").gates == ()
    assert "no gates" in repr(mlnb(shell, "gates toy"))


def test_eval_checks_gates_given_on_the_line(shell):
    ev = mlnb(shell, "eval toy:1 --data val --n-bootstrap 100 --gate 'accuracy >= 0.9'")
    assert ev.passed is False
    with pytest.raises(UsageError, match=r"accuarcy.*did you mean 'accuracy'"):
        mlnb(shell, "eval toy:1 --data val --gate 'accuarcy >= 0.9'")


def test_compare_gives_a_verdict_with_paired_tests(shell):
    cmp = mlnb(shell, "compare toy:1 toy:2 --data val --n-bootstrap 200")
    assert cmp.verdict.startswith("toy:2 is better on accuracy by")
    assert cmp["accuracy"].p_value < 0.001


def test_missing_data_is_one_line(shell):
    with pytest.raises(UsageError, match=r"^InvalidArgument: --data 'vall' is not defined in the "
                                         r"notebook; did you mean 'val'\?"):
        mlnb(shell, "eval toy:2 --data vall")


def test_show_lists_a_versions_evaluations(shell):
    assert repr(mlnb(shell, "show toy:2")) == "<Version toy:2 torch>"
    mlnb(shell, "eval toy:2 --data val --n-bootstrap 50")
    shown = mlnb(shell, "show toy:2")
    assert shown.ref == "toy:2" and len(shown.evaluations) == 1
    assert repr(shown).endswith("(1 evaluations)")
    assert "accuracy" in shown._repr_html_() and "evaluations" in shown._repr_html_()

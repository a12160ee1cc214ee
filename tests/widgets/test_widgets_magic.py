"""``%mlnb panel`` in a real IPython shell."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

pytest.importorskip("anywidget")


def test_mlnb_panel_returns_a_panel_on_the_kernels_registry(ip, tmp_path):
    from mlnb.widgets import RegistryPanel

    f = tmp_path / "w.bin"
    f.write_text("w")
    ip.run_line_magic("mlnb", f"register churn {f} --metric acc=0.9")
    panel = ip.run_line_magic("mlnb", "panel")
    assert isinstance(panel, RegistryPanel)
    magics = ip.magics_manager.registry["MlnbMagics"]
    assert panel.registry is magics.registry
    assert [m["name"] for m in panel.models] == ["churn"] and panel.selected_model == ""
    ip.run_cell("p = %mlnb panel churn --auto-refresh 5", store_history=False).raise_error()
    p = ip.user_ns["p"]
    assert (p.selected_model, p.version_count, p.auto_refresh) == ("churn", 1, 5.0)
    data, _ = ip.display_formatter.format(p)
    assert data["text/plain"] == "<RegistryPanel model=churn versions=1>"
    assert "application/vnd.jupyter.widget-view+json" in data
    panel.close()
    p.close()


def test_mlnb_panel_errors_are_one_line(ip):
    with pytest.raises(UsageError, match=r"^NotFound: no model 'nope'"):
        ip.run_line_magic("mlnb", "panel nope")
    with pytest.raises(UsageError, match=r"^InvalidArgument: auto_refresh must be"):
        ip.run_line_magic("mlnb", "panel --auto-refresh -2")


def test_mlnb_panel_completes_model_names(ip, tmp_path):
    from mlnb.magics import complete

    f = tmp_path / "w.bin"
    f.write_text("w")
    ip.run_line_magic("mlnb", f"register churn {f}")
    magics = ip.magics_manager.registry["MlnbMagics"]
    assert complete(magics, "%mlnb panel ch") == ["churn"]
    assert "panel" in complete(magics, "%mlnb pa")

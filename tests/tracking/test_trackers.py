"""``track=`` names, options, plug-ins and missing packages: clear errors before training."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from mlnb.errors import InvalidArgument, MissingDependency
from mlnb.tracking import Publisher, available_trackers, make_publishers


class Mine(Publisher):
    name = "mine"


def test_nothing_to_track():
    assert make_publishers(None) == [] and make_publishers([]) == []
    assert make_publishers(False) == []


def test_names_dicts_and_objects_in_order():
    pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    from mlnb.tracking import MLflowPublisher, WandbPublisher

    mine = Mine()
    built = make_publishers(["mlflow", mine, {"wandb": {"project": "p", "mode": "offline"}}])
    assert [type(p) for p in built] == [MLflowPublisher, Mine, WandbPublisher]
    assert built[1] is mine and built[2].project == "p" and built[2].mode == "offline"
    one, = make_publishers({"mlflow": {"experiment": "e"}, "wandb": False})
    assert isinstance(one, MLflowPublisher) and one.experiment == "e"
    assert isinstance(make_publishers("mlflow")[0], MLflowPublisher)


def test_unknown_tracker_name_suggests_the_close_one():
    with pytest.raises(InvalidArgument) as err:
        make_publishers(["mlfow"])
    assert str(err.value).startswith(
        "unknown tracker 'mlfow'; did you mean 'mlflow'?; known trackers: mlflow, wandb")
    assert "'mlnb.trackers' entry-point group" in str(err.value)


def test_bad_track_values():
    with pytest.raises(InvalidArgument, match="track= takes tracker names"):
        make_publishers(42)
    with pytest.raises(InvalidArgument, match="track= takes tracker names"):
        make_publishers([Mine])  # the class, not an instance
    with pytest.raises(InvalidArgument, match="tracker 'mlflow' is named twice"):
        make_publishers(["mlflow", {"mlflow": {}}])
    with pytest.raises(InvalidArgument, match="options of tracker 'wandb' must be a dict"):
        make_publishers({"wandb": "offline"})


def test_unknown_options_list_what_the_tracker_accepts():
    pytest.importorskip("mlflow")
    with pytest.raises(InvalidArgument) as err:
        make_publishers({"mlflow": {"experiement": "x"}})
    message = str(err.value)
    assert message.startswith("bad options ['experiement'] for tracker 'mlflow'")
    assert message.endswith("it accepts: experiment, tracking_uri, run_name, tags, log_model")
    with pytest.raises(InvalidArgument, match="experiment must be a non-empty string, not 3"):
        make_publishers({"mlflow": {"experiment": 3}})


@pytest.mark.parametrize("name, extra", [("mlflow", "mlflow"), ("wandb", "wandb")])
def test_a_missing_package_names_the_extra_to_install(monkeypatch, name, extra):
    monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    with pytest.raises(MissingDependency) as err:
        make_publishers([name])
    assert err.value.package == name and err.value.extra == extra
    assert str(err.value).endswith(f'run: pip install "mlnb[{extra}]"')
    assert f"track=['{name}']" in str(err.value)


def test_a_third_party_tracker_plugs_in_through_the_entry_point_group(tmp_path, monkeypatch):
    (tmp_path / "acme_tracker.py").write_text(textwrap.dedent("""
        from mlnb.tracking import Publisher

        class AcmePublisher(Publisher):
            name = "acme"

            def __init__(self, *, endpoint="local", log_model=True):
                super().__init__(log_model=log_model)
                self.endpoint = endpoint
    """))
    dist = tmp_path / "acme_tracker-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-tracker\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[mlnb.trackers]\nacme = acme_tracker:AcmePublisher\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    assert "acme" in available_trackers()
    acme, = make_publishers({"acme": {"endpoint": "https://acme.example"}})
    assert type(acme).__name__ == "AcmePublisher" and acme.endpoint == "https://acme.example"
    with pytest.raises(InvalidArgument, match="did you mean 'acme'"):
        make_publishers(["acmee"])


def test_importing_mlnb_tracking_loads_neither_mlflow_nor_wandb():
    code = (
        "import sys, json, mlnb.tracking\n"
        "print(json.dumps(sorted(m for m in ('mlflow', 'wandb', 'torch', 'pandas') "
        "if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert json.loads(out.splitlines()[-1]) == []


def test_all_is_sorted_and_resolves():
    import mlnb.tracking as tracking
    import mlnb.tracking.base as base

    for module in (tracking, base):
        assert module.__all__ == sorted(module.__all__)
        assert all(getattr(module, name) is not None for name in module.__all__)

"""Every package's ``__all__`` is sorted and names exactly what it exports."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = ["mlnb", "mlnb.errors", "mlnb.refs", "mlnb.registry", "mlnb.storage", "mlnb.serialize",
            "mlnb.evaluation", "mlnb.tracking", "mlnb.training"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_every_name_exists(name):
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported)
    for attr in exported:
        assert getattr(module, attr) is not None, f"{name}.{attr}"


def test_lazy_names_resolve_to_the_real_objects():
    import mlnb
    from mlnb.registry.client import Registry

    assert mlnb.Registry is Registry
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        mlnb.Nope  # noqa: B018


def test_every_error_class_is_an_mlnb_error_importable_from_mlnb():
    import mlnb
    from mlnb import errors

    for name in errors.__all__:
        cls = getattr(mlnb, name)
        assert issubclass(cls, mlnb.MlnbError)

"""The pickle format: round trips when trusted, refused (and never unpickled) otherwise."""

from __future__ import annotations

import collections
import json
import os
import threading

import pytest

from mlnb.errors import InvalidArgument, NotFound, UntrustedObject
from mlnb.serialize import load, stage


class Payload:
    """Unpickling this creates *marker*: proof that a load ran the pickle's code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_round_trip_with_trust(tmp_path):
    obj = {"weights": [1.5, 2.5], "labels": ("a", "b"), "nested": {"k": None}}
    staged = stage(obj, tmp_path)
    assert staged.format == "pickle"
    assert staged.files == [("object.pkl", tmp_path / "object.pkl")]
    metadata = json.loads(json.dumps(staged.metadata))
    assert metadata["protocol"] == 5
    assert metadata["type"] == "builtins.dict"
    assert "python" in metadata["versions"]
    assert load("pickle", tmp_path, metadata, trust=True) == obj


def test_records_type_of_object(tmp_path):
    staged = stage(collections.OrderedDict(a=1), tmp_path)
    assert staged.metadata["type"] == "collections.OrderedDict"


def test_refused_without_trust_and_payload_not_run(tmp_path):
    marker = tmp_path / "pwned"
    work = tmp_path / "work"
    work.mkdir()
    staged = stage(Payload(str(marker)), work)
    for trust in (False, "yes", 1):
        with pytest.raises(UntrustedObject) as info:
            load("pickle", work, staged.metadata, trust=trust)
        assert "trust=True only for artifacts you or your team created" in str(info.value)
    assert not marker.exists()
    # The same artifact does run its payload when trusted: the check above was meaningful.
    load("pickle", work, staged.metadata, trust=True)
    assert marker.exists()


@pytest.mark.parametrize(
    ("make", "type_name"),
    [
        (lambda tmp: lambda x: x, "function"),
        (lambda tmp: open(tmp / "f.txt", "w"), "TextIOWrapper"),  # noqa: SIM115 - test closes it
        (lambda tmp: threading.Lock(), "lock"),
    ],
)
def test_unpicklable_objects(tmp_path, make, type_name):
    work = tmp_path / "work"
    work.mkdir()
    obj = make(tmp_path)
    try:
        with pytest.raises(InvalidArgument, match=f"cannot pickle object of type .*{type_name}"):
            stage(obj, work)
    finally:
        if hasattr(obj, "close"):
            obj.close()
    assert list(work.iterdir()) == []


def test_missing_pickle_file(tmp_path):
    with pytest.raises(NotFound, match=r"object\.pkl is missing"):
        load("pickle", tmp_path, {}, trust=True)

"""Models, the audit log, fsck and gc reports, and ``to_html`` for any result."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mlnb.display import audit_html, fsck_html, gc_html, models_html, to_html
from mlnb.registry.records import FsckReport, GcReport, ModelInfo

HOSTILE = "<img src=x onerror=alert(1)>"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def test_models_show_counts_latest_and_where_each_alias_points(mem, files, read_html):
    for _ in range(3):
        mem.register("churn", files())
    mem.register("fraud", files())
    mem.promote("churn:2")
    mem.set_alias("churn:3", "candidate")

    page = read_html(models_html(mem.models()))

    assert page.count("tr") == 3
    assert "churn" in page.text and "fraud" in page.text
    assert "churn:3" in page.text and "fraud:1" in page.text  # latest
    assert "@production → 2" in page.text and "@candidate → 3" in page.text


def test_one_model_and_hostile_model_text(read_html, bundle):
    model = ModelInfo(name="m", description=HOSTILE, created_at=T0, created_by=HOSTILE,
                      versions=2, latest=2, aliases={"production": 1}, updated_at=T0)
    for markup in (model._repr_html_(), models_html([model])):
        page = read_html(markup)
        assert "img" not in page.tags
        assert page.text.count(HOSTILE) >= 1
    page = read_html(model._repr_html_())
    assert "2 versions" in page.text and "latest m:2" in page.text
    assert "@production → 1" in page.text
    assert bundle(model)["text/plain"] == repr(model)


def test_audit_log_shows_who_moved_which_alias_and_why(mem, files, read_html):
    mem.register("m", files())
    mem.register("m", files())
    mem.promote("m:1", reason="first release")
    mem.promote("m:2", reason=HOSTILE)
    entries = mem.audit("m")

    markup = audit_html(entries, now=entries[0].at + timedelta(minutes=5))
    page = read_html(markup)

    assert page.count("tr") == 1 + len(entries)
    assert "tester" in page.text and "promote" in page.text and "register" in page.text
    assert "@production 1 → 2" in page.text and "@production – → 1" in page.text
    assert "first release" in page.text
    assert HOSTILE in page.text and "img" not in page.tags
    assert "5 min ago" in page.text
    assert entries[0]._repr_html_().count("<tr>") == 2  # one entry: header + its row


def test_a_clean_fsck_says_ok_and_a_broken_one_names_the_files(mem, files, tmp_path, read_html,
                                                                 bundle):
    v = mem.register("m", files({"a.bin": b"a", "b.bin": b"b"}))
    report = mem.fsck()
    page = read_html(report._repr_html_())
    assert page.text.startswith("✔ ok: 2 files checked, 0 missing")
    assert bundle(report)["text/plain"] == repr(report)

    blob = next(Path(tmp_path / "art").rglob(v.files[0].sha256))
    blob.unlink()
    page = read_html(mem.fsck()._repr_html_())
    assert page.text.startswith("✘ problems: 2 files checked, 1 missing")
    assert "missing (1):" in page.text and "a.bin" in page.text


def test_fsck_lists_are_capped_and_orphans_point_to_gc(read_html):
    report = FsckReport(checked=500, missing=tuple(f"m:1/f{i}" for i in range(120)),
                        corrupt=(f"m:2/{HOSTILE}: sha256 mismatch",), orphans=("ab" * 32,),
                        held=(), temp=())
    page = read_html(fsck_html(report))
    assert page.count("li") == 50 + 1 + 1
    assert "… 70 more" in page.text
    assert HOSTILE in page.text and "img" not in page.tags
    assert "remove them with mlnb gc" in page.text


def test_gc_reports_what_it_removed_or_would(mem, read_html, bundle):
    report = mem.gc(dry_run=True)
    assert read_html(report._repr_html_()).text == "would remove 0 blobs (0 B) and 0 temporary uploads"
    report = GcReport(blobs=("cd" * 32, "ef" * 32), bytes=3 * 1024 * 1024, temp=(), dry_run=False)
    page = read_html(gc_html(report))
    assert "removed 2 blobs (3.0 MiB)" in page.text and "cdcdcdcdcdcd" in page.text
    assert bundle(report)["text/plain"] == repr(report)


def test_to_html_renders_every_result_and_lists_of_them(mem, files, read_html):
    mem.register("m", files())
    mem.register("m", files(), parent="m:1")
    from mlnb.registry.diff import diff_versions

    results = [mem.get("m:2"), mem.versions("m"), list(mem.versions("m")), mem.models(),
               mem.models()[0], mem.lineage("m:2"), mem.audit(), mem.audit()[0], mem.fsck(),
               mem.gc(dry_run=True), diff_versions(mem.get("m:1"), mem.get("m:2"))]
    kinds = ["version", "versions", "versions", "models", "model", "lineage", "audit", "audit",
             "fsck", "gc", "diff"]
    for result, kind in zip(results, kinds):
        markup = to_html(result)
        assert markup.startswith(f'<div class="mlnb mlnb-{kind}">'), kind
        read_html(markup)
    with pytest.raises(TypeError, match="no HTML view of dict"):
        to_html({})

"""One version in a notebook: what it shows, and that user text never becomes markup."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from mlnb.display import version_html

HOSTILE = "<img src=x onerror=alert(1)>"


def test_a_version_shows_its_ref_aliases_metrics_params_tags_and_files(mem, files, read_html):
    mem.register("churn", files(), metrics={"acc": 0.9}, description="first")
    v = mem.register("churn", files({"w.bin": b"x" * 3000, "cfg.json": b"{}"}), parent="churn:1",
                     metrics={"acc": 0.91234567, "loss": 0.25}, params={"lr": 0.01, "layers": [64, 32]},
                     tags={"team": "growth"}, description="second try\nwith dropout")
    mem.promote("churn:2")
    v = mem.get("churn:2")

    page = read_html(v._repr_html_())

    assert "churn:2" in page.text and "active" in page.text
    assert "@production" in page.text
    assert "parent churn:1" in page.text
    assert "second try\nwith dropout" in page.text
    assert "0.9123" in page.text and "0.25" in page.text     # 4 significant digits
    assert ("span", "title", "0.91234567") in page.attrs     # the exact value on hover
    assert "lr" in page.text and "0.01" in page.text and "[64, 32]" in page.text
    assert "team" in page.text and "growth" in page.text
    assert "w.bin" in page.text and "cfg.json" in page.text and "2.9 KiB" in page.text and "2 B" in page.text
    sha = v.files[0].sha256
    assert sha[:12] in page.text and ("td", "title", sha) in page.attrs
    assert page.count("table") == 4                          # metrics, params, tags, files


def test_created_is_relative_with_the_exact_utc_time_kept(mem, files, read_html):
    v = mem.register("m", files())
    page = read_html(version_html(v, now=v.created_at + timedelta(minutes=3)))
    assert "created 3 min ago" in page.text
    exact = f"{v.created_at:%Y-%m-%d %H:%M:%S} UTC"
    assert ("time", "title", exact) in page.attrs
    assert f"({exact})" in page.text  # written out too: a saved notebook is read much later


def test_hostile_text_is_shown_as_text_never_as_markup(mem, tmp_path, read_html):
    folder = tmp_path / "hostile"
    folder.mkdir()
    (folder / f"{HOSTILE}.txt").write_text("x")
    v = mem.register("m", folder, description=HOSTILE, tags={"note": HOSTILE},
                     params={"cmd": HOSTILE, HOSTILE: 1}, metrics={HOSTILE: 0.5})

    markup = v._repr_html_()
    page = read_html(markup)

    assert "img" not in page.tags
    assert not any(name == "onerror" for _, name, _ in page.attrs)
    # description, tag value, param value, param name, metric name, file name
    assert page.text.count(HOSTILE) >= 6
    assert "&lt;img src=x onerror=alert(1)&gt;" in markup


def test_the_notebook_gets_the_short_repr_as_text_and_the_html(mem, files, bundle):
    v = mem.register("m", files(), metrics={"acc": 1.0})
    data = bundle(v)
    assert data["text/plain"] == repr(v) and data["text/plain"].startswith("<Version m:1")
    assert data["text/html"] == v._repr_html_()


def test_a_retired_version_says_so(mem, files, read_html):
    mem.register("m", files())
    v = mem.retire("m:1")
    page = read_html(v._repr_html_())
    assert re.search(r"m:1\s+retired", page.text)


def test_a_version_with_many_files_lists_both_ends(read_html):
    from mlnb.registry.records import Version

    v = Version.from_wire({
        "name": "m", "version": 1, "status": "active", "format": "files", "description": None,
        "created_at": datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp(), "created_by": "me",
        "metrics": {}, "params": {}, "tags": {}, "aliases": [], "parent": None,
        "files": [{"path": f"part-{i:04}.bin", "sha256": f"{i:064x}", "size": i}
                  for i in range(1000)],
    })
    page = read_html(v._repr_html_())
    assert "part-0000.bin" in page.text and "part-0999.bin" in page.text
    assert "part-0500.bin" not in page.text
    assert "… 900 more files …" in page.text

"""Helpers for the display tests: read rendered HTML the way a browser and a user would."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

# Elements HTML closes by itself; everything else must be closed, in order.
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
         "track", "wbr"}


@dataclass
class Page:
    """What a parse of rendered HTML found: its elements, attributes and visible text."""

    tags: list[str] = field(default_factory=list)
    attrs: list[tuple[str, str, str | None]] = field(default_factory=list)
    text: str = ""
    style: str = ""

    def count(self, tag: str) -> int:
        return self.tags.count(tag)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self.stack: list[str] = []
        self.chunks: list[str] = []

    def handle_starttag(self, tag, attrs):  # noqa: ANN001
        self.page.tags.append(tag)
        self.page.attrs += [(tag, k, v) for k, v in attrs]
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):  # noqa: ANN001
        self.page.tags.append(tag)
        self.page.attrs += [(tag, k, v) for k, v in attrs]

    def handle_endtag(self, tag):  # noqa: ANN001
        assert self.stack, f"</{tag}> closes nothing"
        opened = self.stack.pop()
        assert opened == tag, f"<{opened}> closed by </{tag}>"

    def handle_data(self, data):  # noqa: ANN001
        if self.stack and self.stack[-1] == "style":
            self.page.style += data
        else:
            self.chunks.append(data)


def _read_html(markup: str) -> Page:
    """Parse *markup*; fail unless every element is closed in order and nothing is unsafe.

    Unsafe: a ``<script>``, an ``on*`` event attribute, or anything that loads
    a resource (``src``, ``href``, ``url(`` in the style).
    """
    reader = _Reader()
    reader.feed(markup)
    reader.close()
    assert reader.stack == [], f"unclosed: {reader.stack}"
    page = reader.page
    page.text = "".join(reader.chunks)
    assert "<script" not in markup.lower()
    assert "script" not in page.tags
    for tag, name, _ in page.attrs:
        assert not name.startswith("on"), f"event handler {name} on <{tag}>"
        assert name not in ("src", "href"), f"resource {name} on <{tag}>"
    assert "url(" not in page.style and "@import" not in page.style
    return page


@pytest.fixture
def files(tmp_path: Path):
    """Write a small file or folder to register; returns its path."""
    counter = iter(range(1_000_000))

    def make(content: bytes | dict[str, bytes] = b"weights") -> Path:
        """*content*: the bytes of one ``model.bin``, or a folder as ``{name: bytes}``."""
        folder = tmp_path / f"src{next(counter)}"
        folder.mkdir()
        named = content if isinstance(content, dict) else {"model.bin": content}
        for name, data in named.items():
            (folder / name).write_bytes(data)
        return folder if isinstance(content, dict) else folder / "model.bin"

    return make


@pytest.fixture
def mem(tmp_path: Path):
    """A ``:memory:`` registry with a local artifact folder."""
    import mlnb

    reg = mlnb.Registry(registry=":memory:", storage=tmp_path / "art")
    yield reg
    reg.close()


@pytest.fixture
def read_html():
    """Parse HTML as a browser would; fails on unbalanced or unsafe markup (see _read_html)."""
    return _read_html


@pytest.fixture
def bundle():
    """The mime bundle IPython would save in a notebook for an object."""
    formatters = pytest.importorskip("IPython.core.formatters")
    shell_free = formatters.DisplayFormatter()

    def format(obj: object) -> dict[str, str]:
        data, _ = shell_free.format(obj)
        return data

    return format

"""Names and references: the only way a user's text becomes a model identity.

A model name is 1-128 characters of ``A-Z a-z 0-9 . _ -`` starting with a
letter or digit, so it can never be a path, an SQL fragment or a flag.  An
alias follows the same rule.  A reference is ``name`` (the latest active
version), ``name:7`` (version 7) or ``name@production`` (an alias).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Iterable

from mlnb.errors import InvalidArgument, InvalidName

__all__ = [
    "NAME_RULE", "Ref", "check_alias", "check_name", "parse_ref", "split_pair", "suggest",
]

NAME_RULE = (
    "1-128 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_VERSION = re.compile(r"[1-9][0-9]{0,17}")


def _check(kind: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidName(f"{kind} must be a string, not {type(value).__name__}: {value!r}")
    if not _NAME.fullmatch(value):
        raise InvalidName(f"invalid {kind} {value!r}: use {NAME_RULE}")
    return value


def check_name(name: object) -> str:
    """Return *name* if it is a valid model name, else raise :class:`InvalidName`."""
    return _check("model name", name)


def check_alias(alias: object) -> str:
    """Return *alias* if it is a valid alias, else raise :class:`InvalidName`."""
    return _check("alias", alias)


@dataclass(frozen=True)
class Ref:
    """A parsed reference: a model name plus at most one of version or alias."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def parse_ref(text: object) -> Ref:
    """Parse ``name``, ``name:N`` or ``name@alias`` into a :class:`Ref`.

    Raises
    ------
    InvalidName
        If the text is not a reference; the message states the accepted forms.
    """
    if isinstance(text, Ref):
        return text
    if not isinstance(text, str):
        raise InvalidName(f"a reference must be a string, not {type(text).__name__}: {text!r}")
    forms = "use 'name', 'name:VERSION' or 'name@ALIAS'"
    if ":" in text and "@" in text:
        raise InvalidName(f"invalid reference {text!r}: {forms}, not both")
    if ":" in text:
        name, _, version = text.partition(":")
        if not _VERSION.fullmatch(version):
            raise InvalidName(
                f"invalid version {version!r} in {text!r}: versions are whole numbers from 1; {forms}"
            )
        return Ref(check_name(name), version=int(version))
    if "@" in text:
        name, _, alias = text.partition("@")
        return Ref(check_name(name), alias=check_alias(alias))
    return Ref(check_name(text))


def suggest(word: str, choices: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest of *choices*, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def split_pair(text: str, kind: str = "value") -> tuple[str, str]:
    """Split ``KEY=VALUE`` (as in ``--metric acc=0.9``) into its two halves.

    Raises
    ------
    InvalidArgument
        There is no ``=`` or no key.
    """
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise InvalidArgument(f"{kind} must be KEY=VALUE, not {text!r}")
    return key, value

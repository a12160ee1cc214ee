"""Quality gates: parse ``"accuracy >= @production - 0.005"`` and check it against estimates.

A gate is one comparison of one scalar metric::

    METRIC[.lower|.upper|.value] OP RHS
    OP  = >= | <= | > | <
    RHS = NUMBER | @ALIAS | @ALIAS + NUMBER | @ALIAS - NUMBER

``.lower``/``.upper`` take the bound of the metric's 95% interval, ``.value`` (the
default) its point estimate.  On the alias side the value is always the point
estimate of the same metric for the version holding the alias, evaluated on the same
data (the caller looks it up by data fingerprint).  Spaces are optional; metric
names are case-sensitive.  Rules, each a deliberate choice:

* ``==`` and ``!=`` are refused: metrics are floats, equality is a coin toss; a
  range is two gates.  Values within 1e-9 (relative) of the threshold count as
  equal, so that ``0.93 - 0.1`` versus ``0.83`` ties: ``>=`` passes, ``>`` fails.
* Direction is not checked: ``"log_loss >= 0.1"`` is accepted as written.
* ``95%`` is refused (write ``0.95``); so are ``nan``, ``inf`` and arithmetic on a
  plain number.  ``@canary-2`` could be an alias or ``@canary - 2``: written glued
  like that it is refused, and the error gives both spellings (an alias really named
  ``canary-2`` is written ``@canary-2 + 0``, and its canonical text keeps the ``+ 0``).
* A relative gate against an alias that holds no version yet *passes* ("nothing to
  compare"): the first production version must be promotable.  A NaN on either side
  fails.  A missing metric, interval or evaluation of the alias is *not decided*
  (``passed is None``), which a :class:`GateReport` counts as not passed.

The module is pure: no registry, no numpy; an estimate is anything with ``value``,
``lower`` and ``upper`` (``mlnb.evaluation.metrics.Estimate``).
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Protocol

from mlnb.errors import InvalidArgument, InvalidName
from mlnb.refs import NAME_RULE, check_alias, suggest

__all__ = [
    "BOUNDS", "Gate", "GateReport", "GateResult", "NON_SCALAR", "OPS", "check", "parse_gate",
    "parse_gates",
]

OPS = (">=", "<=", ">", "<")
BOUNDS = ("value", "lower", "upper")
#: Metrics that are not one number and so can never be gated.
NON_SCALAR = frozenset({"confusion_matrix", "reliability_diagram", "roc_curve", "pr_curve"})

_EXAMPLE = "e.g. 'accuracy >= 0.95' or 'accuracy >= @production - 0.005'"
_USE_OPS = "use >=, <=, > or <"
_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_NUMBER = re.compile(_NUM)
_SIGNED = re.compile(rf"[+-]?\s*{_NUM}")
_METRIC = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BOUND = re.compile(r"\.\s*([A-Za-z_][A-Za-z0-9_]*)?")
_OP = re.compile(r"[<>=!]+")
_ALIAS = re.compile(r"[^\s+<>=!%]*")
# An alias name that could also be read as "@base - number" ("canary-2", "production-0.005").
_GLUED = re.compile(rf"(?P<base>[A-Za-z0-9][A-Za-z0-9._-]*?)-(?P<num>{_NUM})")
_WRONG_OPS = {"=>": ">=", "=<": "<=", "≥": ">=", "≤": "<="}
# Ties closer than this are floating-point noise (0.93 - 0.1 is 0.8300000000000001).
_REL_TOL, _ABS_TOL = 1e-9, 1e-12


class _Estimate(Protocol):
    value: float
    lower: float | None
    upper: float | None


def _num(x: float) -> str:
    """Shortest text that reads back as *x*: ``0.95``, ``20``, ``1e-10``."""
    text = repr(float(x) + 0.0)  # + 0.0 turns -0.0 into 0.0
    return text[:-2] if text.endswith(".0") else text


def _short(x: float) -> str:
    return _pair(x, x)[0]


@dataclass(frozen=True)
class Gate:
    """One parsed gate; ``str(gate)`` is its canonical text, which parses back to it.

    Build gates with :func:`parse_gate` or :meth:`from_dict`, which validate; the
    constructor itself checks nothing.
    """

    metric: str
    bound: str
    op: str
    threshold: float | None = None
    alias: str | None = None
    offset: float = 0.0
    text: str = field(init=False)

    def __post_init__(self) -> None:
        # Built by the parser (or from_dict, which re-parses), so the fields are valid.
        object.__setattr__(self, "text", self._canonical())

    def _canonical(self) -> str:
        left = self.metric if self.bound == "value" else f"{self.metric}.{self.bound}"
        if self.alias is None:
            return f"{left} {self.op} {_num(self.threshold)}"  # type: ignore[arg-type]
        right = f"@{self.alias}"
        if self.offset > 0 or (self.offset == 0 and _GLUED.fullmatch(self.alias)):
            right += f" + {_num(self.offset)}"
        elif self.offset < 0:
            right += f" - {_num(-self.offset)}"
        return f"{left} {self.op} {right}"

    @property
    def is_relative(self) -> bool:
        """Whether the gate compares against another version (``@alias``)."""
        return self.alias is not None

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"<Gate {self.text}>"

    def to_dict(self) -> dict[str, Any]:
        """The gate as JSON-ready fields (``text`` is for people; the fields are the truth)."""
        return {"text": self.text, "metric": self.metric, "bound": self.bound, "op": self.op,
                "threshold": self.threshold, "alias": self.alias, "offset": self.offset}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Gate:
        """Rebuild a gate from :meth:`to_dict`: its text is parsed again, the fields must agree.

        Raises
        ------
        InvalidArgument
            The text does not parse, or a field disagrees with it (stored data was edited).
        """
        text = data.get("text") if isinstance(data, Mapping) else None
        if not isinstance(text, str):
            raise InvalidArgument(f"a stored gate must be a mapping with its 'text', not {data!r}")
        gate = _Parser(text, None).parse()
        bad = [k for k, v in data.items() if k != "text" and getattr(gate, k, object()) != v]
        if bad:
            raise InvalidArgument(f"stored gate {text!r} disagrees with its text on "
                                  f"{', '.join(map(str, bad))}: set the model's gates again")
        return gate


class _Parser:
    """Reads one gate left to right; every error names the gate and the bad part."""

    def __init__(self, text: str, known: frozenset[str] | None) -> None:
        self.text, self.known, self.pos = text, known, 0
        self.src = text.strip()

    def fail(self, message: str) -> InvalidArgument:
        return InvalidArgument(f"gate {self.text!r}: {message}")

    def skip(self) -> None:
        while self.pos < len(self.src) and self.src[self.pos].isspace():
            self.pos += 1

    def take(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        self.skip()
        match = pattern.match(self.src, self.pos)
        if match:
            self.pos = match.end()
        return match

    def rest(self) -> str:
        self.skip()
        return self.src[self.pos:]

    def number(self, match: re.Match[str]) -> float:
        text = re.sub(r"\s", "", match[0])
        if self.rest().startswith("%"):
            raise self.fail(f"percentages are not allowed ({text}%); "
                            f"write the fraction {_num(float(text) / 100)}")
        if not math.isfinite(float(text)):
            raise self.fail(f"{text!r} is not a finite number")
        return float(text)

    def parse(self) -> Gate:
        if not self.src:
            raise InvalidArgument(f"a gate is empty: write METRIC OP VALUE, {_EXAMPLE}")
        metric = self.take(_METRIC)
        if metric is None:
            first = self.src.split()[0]
            if _OP.match(first):
                raise self.fail(f"no metric before {_OP.match(first)[0]!r}; "  # type: ignore[index]
                                f"write METRIC OP VALUE, {_EXAMPLE}")
            raise self.fail(f"a gate starts with a metric name, not {first!r}; {_EXAMPLE}")
        name = metric[0]
        bound = "value"
        if self.rest().startswith("."):
            word = self.take(_BOUND)[1]  # type: ignore[index]
            if word not in BOUNDS:
                hint = suggest(word, BOUNDS) if word else ""
                raise self.fail(f"unknown bound '.{word or ''}' on {name!r}; use .lower, .upper "
                                f"or .value (the default){hint}")
            bound = word
        if name in NON_SCALAR:
            raise self.fail(f"{name!r} is not a single number and cannot be gated; "
                            f"gate a scalar metric such as 'accuracy'")
        if self.known is not None and name not in self.known:
            listed = sorted(self.known)
            more = f", … ({len(listed)} in all)" if len(listed) > 12 else ""
            known = ", ".join(listed[:12]) + more if listed else "none"
            raise self.fail(f"unknown metric {name!r}; known metrics: {known}"
                            f"{suggest(name, listed)}")
        op = self.parse_op(name)
        if not self.rest():
            raise self.fail(f"nothing after {op!r}; give a number (0.95) or an alias "
                            f"(@production, @production - 0.005)")
        if self.rest().startswith("@"):
            self.pos += 1
            return self.parse_alias(name, bound, op)
        number = self.take(_SIGNED)
        if number is None:
            word = self.rest().split()[0]
            hint = f"; did you mean '@{word}'?" if re.fullmatch(r"[A-Za-z][\w.-]*", word) \
                and word.lower() not in ("nan", "inf", "infinity") else ""
            raise self.fail(f"{word!r} is not a number or an alias (0.95, @production){hint}")
        threshold = self.number(number)
        self.end(_num(threshold))
        return Gate(metric=name, bound=bound, op=op, threshold=threshold)

    def parse_op(self, name: str) -> str:
        op = self.take(_OP)
        if op is None:
            after = self.rest()
            if not after:
                raise self.fail(f"no comparison after {name!r}; {_USE_OPS} and a value")
            raise self.fail(f"expected a comparison after {name!r}, not {after.split()[0]!r}; "
                            f"{_USE_OPS}")
        if op[0] in OPS:
            return op[0]
        if op[0] in ("==", "="):
            raise self.fail(f"{op[0]!r} is not allowed: metrics are floats and equality is "
                            f"fragile; {_USE_OPS} (two gates for a range)")
        hint = f"; did you mean {_WRONG_OPS[op[0]]!r}?" if op[0] in _WRONG_OPS else ""
        raise self.fail(f"{op[0]!r} is not a comparison; {_USE_OPS}{hint}")

    def parse_alias(self, name: str, bound: str, op: str) -> Gate:
        alias = self.take(_ALIAS)[0]  # type: ignore[index]
        if not alias:
            raise self.fail(f"'@' needs an alias name, as in '@production'; an alias is {NAME_RULE}")
        try:
            check_alias(alias)
        except InvalidName as err:
            raise self.fail(f"invalid alias {alias!r}: an alias is {NAME_RULE}") from err
        offset = 0.0
        sign = self.rest()[:1]
        if sign in ("+", "-"):
            self.pos += 1
            number = self.take(_NUMBER)
            if number is None:
                got = repr(self.rest().split()[0]) if self.rest() else "nothing"
                raise self.fail(f"{sign!r} after '@{alias}' needs a plain number, not {got}")
            offset = self.number(number) * (-1 if sign == "-" else 1)
            self.end(f"@{alias} {sign} {number[0]}")
            return Gate(metric=name, bound=bound, op=op, alias=alias, offset=offset)
        glued = _GLUED.fullmatch(alias)
        if alias.endswith("-") and _NUMBER.match(self.rest()):
            glued = _GLUED.fullmatch(alias + self.rest().split()[0])
        if glued:
            raise self.fail(f"'@{glued[0]}' is ambiguous: write '@{glued['base']} - "
                            f"{glued['num']}' for an offset, or '@{glued[0]} + 0' for an alias "
                            f"named {glued[0]!r}")
        self.end(f"@{alias}")
        return Gate(metric=name, bound=bound, op=op, alias=alias, offset=offset)

    def end(self, last: str) -> None:
        junk = self.rest()
        if not junk:
            return
        if _OP.match(junk):
            raise self.fail(f"more than one comparison ({junk!r} after {last!r}); "
                            f"write one comparison per gate (two gates for a range)")
        if junk[0] in "+-" and not last.startswith("@"):
            raise self.fail(f"unexpected {junk!r} after {last!r}: only an alias takes an "
                            f"offset ('@production - 0.005'); write the number itself")
        if last.startswith("@") and " " not in last:
            raise self.fail(f"unexpected {junk!r} after {last!r}: only '+ NUMBER' or "
                            f"'- NUMBER' may follow an alias")
        raise self.fail(f"unexpected {junk!r} after {last!r}; write one comparison per gate")


def _known(known_metrics: Iterable[str]) -> frozenset[str]:
    if isinstance(known_metrics, str):
        raise InvalidArgument(f"known_metrics must be a collection of metric names, not the "
                              f"string {known_metrics!r}: use [{known_metrics!r}]")
    return frozenset(known_metrics)


def parse_gate(text: str | Gate, *, known_metrics: Iterable[str]) -> Gate:
    """Parse one gate strictly.

    Parameters
    ----------
    text
        The gate, e.g. ``"accuracy.lower >= 0.9"``; a :class:`Gate` is re-checked.
    known_metrics
        Metric names the evaluation can produce: the task's built-ins plus user metrics.

    Raises
    ------
    InvalidArgument
        One line that quotes the gate, names the bad part and says what is allowed.
    """
    known = _known(known_metrics)
    if isinstance(text, Gate):
        text = text.text
    if not isinstance(text, str):
        raise InvalidArgument(f"a gate must be a string, {_EXAMPLE}; "
                              f"not {type(text).__name__}: {text!r}")
    return _Parser(text, known).parse()


def parse_gates(texts: Iterable[str | Gate] | str, *,
                known_metrics: Iterable[str]) -> tuple[Gate, ...]:
    """Parse several gates (one string is one gate); the same gate twice is refused.

    Raises
    ------
    InvalidArgument
        A gate does not parse, or two texts are the same gate.
    """
    known = _known(known_metrics)
    if isinstance(texts, (str, Gate)):
        texts = [texts]
    seen: dict[str, str | Gate] = {}
    gates = []
    for text in texts:
        gate = parse_gate(text, known_metrics=known)
        if gate.text in seen:
            raise InvalidArgument(f"gate {gate.text!r} is given twice ({str(seen[gate.text])!r} "
                                  f"and {str(text)!r}); drop one")
        seen[gate.text] = text
        gates.append(gate)
    return tuple(gates)


@dataclass(frozen=True)
class GateResult:
    """The outcome of one gate: *passed* is None when it could not be decided (see *reason*)."""

    gate: Gate
    passed: bool | None
    actual: float | None
    required: float | None
    reason: str


def _pair(a: float, b: float) -> tuple[str, str]:
    """Two numbers to 4 significant digits, more when that would make different ones look equal."""
    for digits in (4, 6, 9, 12, 17):
        fa, fb = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if fa != fb or math.isclose(a, b, rel_tol=_REL_TOL, abs_tol=_ABS_TOL):
            break
    return fa, fb


_HOLDS = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b,
          ">": lambda a, b: a > b, "<": lambda a, b: a < b}
_NOT = {">=": "<", "<=": ">", ">": "<=", "<": ">="}


def _check_one(gate: Gate, estimates: Mapping[str, _Estimate],
               reference: Mapping[str, Mapping[str, _Estimate] | None] | None) -> GateResult:
    label = gate.metric if gate.bound == "value" else f"{gate.metric}.{gate.bound}"

    def undecided(reason: str, actual: float | None = None) -> GateResult:
        return GateResult(gate, None, actual, None, reason)

    estimate = estimates.get(gate.metric)
    if estimate is None:
        return undecided(f"{gate.metric} is not in this evaluation: evaluate with that metric")
    actual = getattr(estimate, gate.bound)
    if actual is None:
        return undecided(f"{gate.metric} has no {gate.bound} bound: its interval "
                         f"could not be computed")
    actual = float(actual)
    if math.isnan(actual):
        return GateResult(gate, False, actual, None, f"{label} is NaN")
    context = ""
    if gate.alias is None:
        required = float(gate.threshold)  # type: ignore[arg-type]
    else:
        at = f"@{gate.alias}"
        if reference is None or gate.alias not in reference:
            return undecided(f"no evaluation of {at} on this data: evaluate it first", actual)
        theirs = reference[gate.alias]
        if theirs is None:
            return GateResult(gate, True, actual, None,
                              f"no version holds {at} yet, nothing to compare")
        other = theirs.get(gate.metric)
        if other is None:
            return undecided(f"the evaluation of {at} on this data has no {gate.metric}: "
                             f"evaluate it with that metric", actual)
        base = float(other.value)
        if math.isnan(base):
            return GateResult(gate, False, actual, base, f"{gate.metric} of {at} is NaN")
        required = base + gate.offset
        sign = "+" if gate.offset >= 0 else "-"
        context = f" ({at} {_short(base)}" + (
            f" {sign} {_num(abs(gate.offset))})" if gate.offset else ")")
    tie = math.isclose(actual, required, rel_tol=_REL_TOL, abs_tol=_ABS_TOL)
    passed = gate.op in (">=", "<=") if tie else _HOLDS[gate.op](actual, required)
    shown_a, shown_r = _pair(actual, required)
    op = gate.op if passed else _NOT[gate.op]
    return GateResult(gate, passed, actual, required, f"{label} {shown_a} {op} {shown_r}{context}")


@dataclass(frozen=True)
class GateReport:
    """All gates' results; ``passed`` (and ``bool(report)``) only when every gate passed."""

    results: tuple[GateResult, ...]

    @property
    def passed(self) -> bool:
        """True only if every gate passed; an undecided gate counts as not passed."""
        return all(r.passed is True for r in self.results)

    @property
    def failed(self) -> tuple[GateResult, ...]:
        """Gates that were decided and failed."""
        return tuple(r for r in self.results if r.passed is False)

    @property
    def undecided(self) -> tuple[GateResult, ...]:
        """Gates that could not be decided (missing metric or reference evaluation)."""
        return tuple(r for r in self.results if r.passed is None)

    def __bool__(self) -> bool:
        return self.passed

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[GateResult]:
        return iter(self.results)

    def summary(self) -> str:
        """One line: ``"3 gates: 2 passed, 1 failed: accuracy >= 0.95 (0.931)"``."""
        n = len(self.results)
        if not n:
            return "no gates: nothing to check"
        counts = [f"{n - len(self.failed) - len(self.undecided)} passed"]
        counts += [f"{len(self.failed)} failed"] if self.failed else []
        counts += [f"{len(self.undecided)} not decided"] if self.undecided else []
        head = f"{n} gate{'s' if n != 1 else ''}: {', '.join(counts)}"
        notes = []
        for r in self.failed + self.undecided:
            if r.passed is None:
                note = r.reason
            elif r.gate.is_relative and r.required is not None:
                note = " vs ".join(_pair(r.actual, r.required))  # type: ignore[arg-type]
            else:
                note = _short(r.actual)  # type: ignore[arg-type]
            notes.append(f"{r.gate} ({note})")
        return head + (": " + "; ".join(notes) if notes else "")

    def __repr__(self) -> str:
        return f"<GateReport {'passed' if self.passed else 'FAILED'}: {self.summary()}>"

    def _repr_html_(self) -> str:
        from mlnb.display.markup import block, table

        def esc(value: object) -> str:
            return html.escape("" if value is None else str(value), quote=True)

        def num(value: float | None) -> str:
            return "" if value is None else esc(_short(value))

        marks = {True: ("mlnb-ok", "✔ passed"), False: ("mlnb-bad", "✘ failed"),
                 None: ("mlnb-muted", "? not decided")}
        rows = []
        for r in self.results:
            cls, mark = marks[r.passed]
            rows.append(f'<tr><td class="mlnb-code">{esc(r.gate)}</td>'
                        f'<td class="{cls}">{esc(mark)}</td>'
                        f'<td class="mlnb-num">{num(r.actual)}</td>'
                        f'<td class="mlnb-num">{num(r.required)}</td>'
                        f'<td class="mlnb-wrap">{esc(r.reason)}</td></tr>')
        verdict = '<strong class="mlnb-ok">passed</strong>' if self.passed \
            else '<strong class="mlnb-bad">not passed</strong>'
        head = (f'<div class="mlnb-head">Quality gates: {verdict} '
                f'<span class="mlnb-muted">{esc(self.summary())}</span></div>')
        body = table(["gate", "result", "actual", "required", "reason"], rows,
                     numeric=[False, False, True, True, False]) if rows else ""
        return block("gates", head + body)


def check(gates: Iterable[Gate] | Gate, estimates: Mapping[str, _Estimate], *,
          reference: Mapping[str, Mapping[str, _Estimate] | None] | None = None) -> GateReport:
    """Check *gates* against one evaluation's *estimates*.

    Parameters
    ----------
    gates
        Parsed gates (:func:`parse_gates`).
    estimates
        Metric name -> estimate (``value``, ``lower``, ``upper``) of the version checked.
    reference
        For relative gates: alias -> estimates of the version holding it, on the same
        data.  An alias mapped to ``None`` holds no version (the gate passes); an alias
        left out has no evaluation on this data (the gate is not decided).

    Returns
    -------
    GateReport
        One :class:`GateResult` per gate, in order.
    """
    if isinstance(gates, Gate):
        gates = [gates]
    gates = list(gates)
    for gate in gates:
        if not isinstance(gate, Gate):
            raise InvalidArgument(f"check() takes parsed gates, not {type(gate).__name__} "
                                  f"{gate!r}: parse them with parse_gates(...)")
    return GateReport(tuple(_check_one(g, estimates, reference) for g in gates))

"""The ``%mlnb`` commands: one parser and one function per command, in one table.

Each function takes the registry, the parsed arguments and the shell's user
namespace, calls one :class:`~mlnb.Registry` method and returns its result
object (which displays itself), so ``v = %mlnb show m:3`` works.  Parsers
raise :class:`~IPython.core.error.UsageError`, which IPython shows as one line.

A command may take a cell (``Command.cell``): ``"argument"`` appends the cell
as its last argument (``%%mlnb sql``); ``"code"`` makes it a cell-only command
whose function gets the cell as ``args.cell``, the magic line as ``args.line``
and the shell as ``args.shell`` (``%%mlnb train``, :mod:`mlnb.magics.train`).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any, Callable

from IPython.core.error import UsageError

from mlnb.errors import InvalidArgument
from mlnb.magics import train as _train

__all__ = ["COMMANDS", "Command", "HelpShown", "usage"]


class HelpShown(Exception):
    """Raised after ``--help`` printed its text: the command does nothing more."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting the kernel."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"%mlnb {self.prog.split()[-1]}: {message}\n{self.format_usage().strip()}")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if message:
            raise UsageError(message.strip())
        raise HelpShown


def _pair(kind: str, cast: Callable[[str], Any]) -> Callable[[str], tuple[str, Any]]:
    def parse(text: str) -> tuple[str, Any]:
        from mlnb.errors import InvalidArgument
        from mlnb.refs import split_pair

        try:
            key, value = split_pair(text, kind)
        except InvalidArgument as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        try:
            return key, cast(value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"{kind} {key}: {err}") from err

    return parse


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


@dataclass(frozen=True)
class Command:
    """A ``%mlnb`` command: its parser, what it does, and which arguments are references."""

    parser: argparse.ArgumentParser
    run: Callable[[Any, argparse.Namespace, dict[str, Any]], Any]
    refs: tuple[str, ...] = ()      # positional slots that take a reference (completion)
    names: tuple[str, ...] = ()     # positional slots that take a model name (completion)
    cell: str | None = None         # "argument" or "code": what a %%mlnb cell is to it
    cell_help: str = ""             # the cell form's line in %mlnb --help


COMMANDS: dict[str, Command] = {}


def _command(name: str, help: str, refs: tuple[str, ...] = (), names: tuple[str, ...] = (),
             cell: str | None = None, cell_help: str = ""):
    parser = _Parser(prog=f"%mlnb {name}", description=help, add_help=True)

    def register(func: Callable[[Any, argparse.Namespace, dict[str, Any]], Any]) -> argparse.ArgumentParser:
        COMMANDS[name] = Command(parser, func, refs, names, cell, cell_help)
        return parser

    return parser, register


# -- the commands ------------------------------------------------------------------

_p, _reg = _command("models", "list the models in the registry")
_reg(lambda reg, a, ns: reg.models())

_p, _reg = _command("versions", "list a model's versions", names=("name",))
_p.add_argument("name")
_p.add_argument("--alias", help="only the version holding this alias")
_p.add_argument("--sort", metavar="METRIC", help="sort by a metric, best (highest) first")
_p.add_argument("--asc", action="store_true", help="with --sort: lowest first")
_p.add_argument("--limit", type=int, metavar="N", help="show at most N versions")


@_reg
def _versions(reg, a, ns):  # noqa: ANN001
    from mlnb.registry.records import VersionList, sort_versions

    versions = list(reg.versions(a.name))
    if a.alias:
        versions = [v for v in versions if a.alias in v.aliases]
    if a.sort:
        versions = sort_versions(versions, a.sort, desc=not a.asc)
    else:
        versions.reverse()  # newest first, as people read a list of versions
    if a.limit is not None:
        versions = versions[: a.limit]
    return VersionList(versions)


_p, _reg = _command("show", "show one version: name, name:3 or name@alias", refs=("ref",))
_p.add_argument("ref")


@dataclass(frozen=True)
class ShownVersion:
    """What ``%mlnb show`` returns: the version (its attributes read through) and its evaluations."""

    version: Any
    evaluations: Any

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "version":  # copy/pickle probe before init
            raise AttributeError(name)
        return getattr(self.version, name)

    def __repr__(self) -> str:
        text = repr(self.version)
        return text if not self.evaluations else f"{text} ({len(self.evaluations)} evaluations)"

    def _repr_html_(self) -> str:
        from mlnb.display.html import evaluations_html

        page = self.version._repr_html_()
        return page if not self.evaluations else page + evaluations_html(self.evaluations)


def _show(reg, a, ns):  # noqa: ANN001
    version = reg.get(a.ref)
    return ShownVersion(version, reg.evaluations(version.ref))


_reg(_show)

_p, _reg = _command("register", "register a variable (model, object) or a path as a new version",
                    names=("name",))
_p.add_argument("name")
_p.add_argument("what", metavar="VAR_OR_PATH", help="a name in your namespace, or a file/folder path")
_p.add_argument("--metric", action="append", default=[], type=_pair("metric", float), metavar="K=V")
_p.add_argument("--param", action="append", default=[], type=_pair("param", _json_or_text), metavar="K=V")
_p.add_argument("--tag", action="append", default=[], type=_pair("tag", str), metavar="K=V")
_p.add_argument("--parent", metavar="REF")
_p.add_argument("--description")


@_reg
def _register(reg, a, ns):  # noqa: ANN001
    obj = ns.get(a.what, a.what)  # a variable of the notebook, else a path
    return reg.register(a.name, obj, metrics=dict(a.metric), params=dict(a.param),
                        tags=dict(a.tag), parent=a.parent, description=a.description)


_p, _reg = _command("promote", "move an alias (default production) to a version", refs=("ref",))
_p.add_argument("ref")
_p.add_argument("alias", nargs="?", default="production")
_p.add_argument("--reason")
_p.add_argument("--force", action="store_true",
                help="promote to production although the model's gates do not pass (needs --reason)")
_reg(lambda reg, a, ns: reg.promote(a.ref, a.alias, reason=a.reason, force=a.force)
     if a.force else reg.promote(a.ref, a.alias, reason=a.reason))

def _data(ns: dict[str, Any], name: str) -> Any:
    if name not in ns:
        from mlnb.refs import suggest

        raise InvalidArgument(
            f"--data {name!r} is not defined in the notebook{suggest(name, ns)}: give the name "
            "of a DataLoader or of a tuple (X, y)"
        )
    return ns[name]


def _eval_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="VAR",
                   help="a DataLoader, an iterable of (inputs, targets) or a tuple (X, y)")
    p.add_argument("--task", default="classification",
                   choices=("classification", "regression", "language-model"))
    p.add_argument("--metric", action="append", default=None, metavar="NAME",
                   help="a metric to compute (repeat; default: the task's built-ins)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--n-bootstrap", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)


def _evaluate(reg, a, ns):  # noqa: ANN001
    from mlnb.evaluation import evaluate

    return evaluate(a.ref, _data(ns, a.data), task=a.task, metrics=a.metric,
                    gates=a.gate or None, device=a.device, batch_size=a.batch_size,
                    n_bootstrap=a.n_bootstrap, seed=a.seed, registry=reg)


_p, _reg = _command("eval", "evaluate a version on data: metrics with 95% intervals, gates",
                    refs=("ref",))
_p.add_argument("ref")
_eval_options(_p)
_p.add_argument("--gate", action="append", default=[], metavar="GATE",
                help="a gate to check, e.g. 'accuracy >= 0.95' (repeat)")
_reg(_evaluate)


def _compare(reg, a, ns):  # noqa: ANN001
    from mlnb.evaluation import compare

    return compare(a.a, a.b, _data(ns, a.data), task=a.task, metrics=a.metric,
                   device=a.device, batch_size=a.batch_size, n_bootstrap=a.n_bootstrap,
                   seed=a.seed, registry=reg)


_p, _reg = _command("compare", "compare two versions on the same examples, with paired tests",
                    refs=("a", "b"))
_p.add_argument("a", metavar="REF_A")
_p.add_argument("b", metavar="REF_B")
_eval_options(_p)
_reg(_compare)


def _gates(reg, a, ns):  # noqa: ANN001
    if a.clear and a.set:
        raise InvalidArgument("give --set or --clear, not both")
    if a.clear:
        return GateList(a.name, reg.set_gates(a.name, [], reason=a.reason))
    if a.set:
        return GateList(a.name, reg.set_gates(a.name, a.set, reason=a.reason))
    return GateList(a.name, reg.gates(a.name))


_p, _reg = _command("gates", "a model's quality gates: show, --set or --clear them",
                    names=("name",))
_p.add_argument("name")
_p.add_argument("--set", action="append", default=[], metavar="GATE",
                help="replace the gates with these, e.g. --set 'accuracy >= @production - 0.005'")
_p.add_argument("--clear", action="store_true", help="remove every gate")
_p.add_argument("--reason")
_reg(_gates)


@dataclass(frozen=True)
class GateList:
    """A model's gates, as ``%mlnb gates`` shows them."""

    name: str
    gates: tuple[str, ...]

    def __repr__(self) -> str:
        if not self.gates:
            return f"<{self.name}: no gates (promotion to production is not checked)>"
        return f"<{self.name} gates: " + "; ".join(self.gates) + ">"

    def _repr_html_(self) -> str:
        import html

        if not self.gates:
            return f"<p><b>{html.escape(self.name)}</b>: no gates</p>"
        items = "".join(f"<li><code>{html.escape(g)}</code></li>" for g in self.gates)
        return f"<p><b>{html.escape(self.name)}</b> gates (checked on promotion to production):</p><ul>{items}</ul>"


_p, _reg = _command("rollback", "move an alias back to the version that held it before",
                    names=("name",))
_p.add_argument("name")
_p.add_argument("--alias", default="production")
_p.add_argument("--reason")
_reg(lambda reg, a, ns: reg.rollback(a.name, a.alias, reason=a.reason))

_p, _reg = _command("retire", "retire a version: it keeps its number but loses its aliases",
                    refs=("ref",))
_p.add_argument("ref")
_p.add_argument("--reason")
_reg(lambda reg, a, ns: reg.retire(a.ref, reason=a.reason))

_p, _reg = _command("alias", "point a free alias (not production/staging) at a version",
                    refs=("ref",))
_p.add_argument("ref")
_p.add_argument("alias")
_p.add_argument("--reason")
_reg(lambda reg, a, ns: reg.set_alias(a.ref, a.alias, reason=a.reason))

_p, _reg = _command("lineage", "what a version came from and what came from it", refs=("ref",))
_p.add_argument("ref")
_reg(lambda reg, a, ns: reg.lineage(a.ref))

_p, _reg = _command("audit", "the audit log, newest first", names=("name",))
_p.add_argument("name", nargs="?")
_p.add_argument("--limit", type=int, default=50)
_reg(lambda reg, a, ns: reg.audit(a.name, limit=a.limit))

_p, _reg = _command("diff", "what differs between two versions, with metric deltas",
                    refs=("a", "b"))
_p.add_argument("a", metavar="REF")
_p.add_argument("b", metavar="REF")
_reg(lambda reg, a, ns: reg.diff(a.a, a.b))

_p, _reg = _command("load", "load a version: a torch module, a local path, or an object",
                    refs=("ref",))
_p.add_argument("ref")
_p.add_argument("--device", help="torch device, e.g. cpu or cuda:0")
_p.add_argument("--trust", action="store_true", help="allow unpickling (only for artifacts you trust)")
_reg(lambda reg, a, ns: reg.load(a.ref, device=a.device, trust=a.trust))

_p, _reg = _command("sql", "read-only SQL over the registry views (cell: %%mlnb sql)",
                    cell="argument", cell_help="the cell is the query")
_p.add_argument("query", nargs="*", help="the query (or write it in the cell body)")
_reg(lambda reg, a, ns: reg.sql(" ".join(a.query)))

_p, _reg = _command("fsck", "check every stored file against its hash")
_p.add_argument("--quick", action="store_true", help="presence and size only")
_reg(lambda reg, a, ns: reg.fsck(deep=not a.quick))

_p, _reg = _command("gc", "delete blobs no version references")
_p.add_argument("--dry-run", action="store_true")
_reg(lambda reg, a, ns: reg.gc(dry_run=a.dry_run))

_p, _reg = _command("export", "write a version to a .tar.gz bundle", refs=("ref",))
_p.add_argument("ref")
_p.add_argument("file")
_reg(lambda reg, a, ns: reg.export(a.ref, a.file))

_p, _reg = _command("import", "register the version in a bundle")
_p.add_argument("file")
_p.add_argument("--name", help="register under this model name instead")
_reg(lambda reg, a, ns: reg.import_bundle(a.file, name=a.name))

_p, _reg = _command("panel", "an interactive registry browser: versions, details, diffs, promote",
                    names=("name",))
_p.add_argument("name", nargs="?", help="a model to select at once")
_p.add_argument("--auto-refresh", type=float, default=0.0, metavar="SECONDS",
                help="ask for changes (from other kernels too) every SECONDS; 0: never")


@_reg
def _panel(reg, a, ns):  # noqa: ANN001
    from mlnb.widgets import RegistryPanel

    return RegistryPanel(reg, a.name, auto_refresh=a.auto_refresh)


_p, _reg = _command("train", "train the model the cell builds, with mlnb.train (cell only)",
                    cell="code", cell_help="the cell is code that builds model, optimizer, "
                    "train_loader, ...")
_train.add_arguments(_p)
_reg(_train.run)

del _p, _reg


def usage() -> str:
    """The ``%mlnb --help`` text: every command with its one-line description."""
    width = max(map(len, COMMANDS))
    lines = ["usage: %mlnb COMMAND [ARGS]   (%mlnb COMMAND --help for details)", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {cmd.parser.description}" for name, cmd in COMMANDS.items()]
    cells = {f"%%mlnb {name}": cmd.cell_help for name, cmd in COMMANDS.items() if cmd.cell}
    width = max(map(len, cells))
    lines += ["", "cell form:"]
    lines += [f"  {form.ljust(width)}  {text}" for form, text in cells.items()]
    return "\n".join(lines)

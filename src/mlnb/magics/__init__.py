"""``%mlnb`` and ``%%mlnb``: the registry from a notebook cell.

``%load_ext mlnb`` registers both magics.  A command returns its result object
(which renders itself), so ``v = %mlnb show m:3`` works.  An
:class:`~mlnb.errors.MlnbError` is shown as one line (``NotFound: ...``), because
IPython hides the traceback only for a plain ``UsageError``; any other error
keeps its traceback, since a bug should look like a bug.

The registry is created on first use from the usual settings (``MLNB_HOME``,
``MLNB_REGISTRY``, ...); ``%mlnb`` reuses it for the life of the kernel.
"""

from __future__ import annotations

import functools
import shlex
from typing import TYPE_CHECKING, Any, Callable

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from mlnb.errors import MlnbError
from mlnb.magics.commands import COMMANDS, HelpShown, usage

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from mlnb.registry.client import Registry

__all__ = ["MlnbMagics", "complete", "load", "unload"]


def _one_line_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an :class:`MlnbError` into a plain UsageError: one line, no traceback.

    An error from the user's own code in a ``%%mlnb train`` cell (marked
    ``_mlnb_cell`` by :mod:`mlnb.magics.train`) keeps its traceback, as in any cell.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BaseException as err:
            if getattr(err, "_mlnb_cell", False):
                # The user's code in a %%mlnb train cell failed: show it as a normal cell would.
                __tracebackhide__ = True  # noqa: F841 (read by IPython's traceback)
                raise
            if isinstance(err, MlnbError):
                raise UsageError(f"{type(err).__name__}: {err}") from None
            raise

    return wrapper


@magics_class
class MlnbMagics(Magics):
    """The ``%mlnb`` line magic and ``%%mlnb`` cell magic."""

    def __init__(self, shell: InteractiveShell) -> None:
        super().__init__(shell)
        self._registry: Registry | None = None

    @property
    def registry(self) -> Registry:
        """The kernel's registry, created on first use."""
        if self._registry is None:
            from mlnb.registry.client import Registry

            self._registry = Registry()
        return self._registry

    @line_cell_magic
    @_one_line_errors
    def mlnb(self, line: str, cell: str | None = None) -> Any:
        """Work with the mlnb model registry: ``%mlnb --help`` lists the commands."""
        try:
            words = shlex.split(line)
        except ValueError as err:
            raise UsageError(f"%mlnb: {err} in {line!r}") from None
        if not words or words[0] in ("-h", "--help", "help"):
            print(usage())
            return None
        name, rest = words[0], words[1:]
        command = COMMANDS.get(name)
        if command is None:
            from mlnb.refs import suggest

            raise UsageError(
                f"%mlnb: unknown command {name!r}{suggest(name, COMMANDS)} (see %mlnb --help)"
            )
        if cell is not None and command.cell is None:
            raise UsageError(f"%%mlnb {name}: only {_cell_commands()}; use %mlnb {name}")
        if cell is not None and command.cell == "argument":
            rest = [*rest, cell]
        try:
            args = command.parser.parse_args(rest)
        except HelpShown:
            return None
        if command.cell == "code":
            if cell is None:
                raise UsageError(f"%mlnb {name} needs a cell: put %%mlnb {line} on the first "
                                 f"line of a cell and the code below it (%mlnb {name} --help)")
            args.cell, args.line, args.shell = cell, line, self.shell
            __tracebackhide__ = True  # noqa: F841 (only the call below is left: show its frames)
        return command.run(self.registry, args, self.shell.user_ns)


def _cell_commands() -> str:
    """``'sql' takes a cell as its query, and 'train' as its code``, from the table."""
    uses: list[str] = []
    for name, command in COMMANDS.items():
        if command.cell == "argument":  # the cell is its last positional argument
            what = [a.dest for a in command.parser._actions if not a.option_strings][-1]
        elif command.cell:
            what = command.cell
        else:
            continue
        uses.append(f"'{name}' {'' if uses else 'takes a cell '}as its {what}")
    return ", and ".join(uses)


def complete(magics: MlnbMagics, line: str) -> list[str]:
    """Completions for the word being typed in *line* (``%mlnb show mni`` -> names).

    Commands complete after ``%mlnb``; model names, ``name:N`` and ``name@alias``
    complete in the positional slots that take a name or a reference.
    """
    words = line.split()
    typing_new = line.endswith((" ", "\t"))
    position = len(words) - (0 if typing_new else 1)  # index of the word being typed
    current = "" if typing_new else words[-1]
    if position <= 1:  # the command name
        return sorted(c for c in COMMANDS if c.startswith(current))
    command = COMMANDS.get(words[1])
    if command is None or current.startswith("-"):
        return []
    slot = len([w for w in words[2:position] if not w.startswith("-")])
    dests = [a.dest for a in command.parser._actions if not a.option_strings]
    if slot >= len(dests):
        return []
    dest = dests[slot]
    if dest not in command.refs and dest not in command.names:
        return []
    try:
        models = magics.registry.models()
    except MlnbError:
        return []
    if dest in command.names or (":" not in current and "@" not in current):
        names = sorted(m.name for m in models if m.name.startswith(current))
        if dest in command.names:
            return names
        return names + sorted(
            f"{m.name}{sep}" for m in models for sep in (":", "@") if m.name == current
        )
    name, sep, _ = current.partition(":" if ":" in current else "@")
    model = next((m for m in models if m.name == name), None)
    if model is None:
        return []
    if sep == ":":
        options = [f"{name}:{v}" for v in range(model.latest or 0, 0, -1)]
    else:
        options = [f"{name}@{a}" for a in sorted(model.aliases)]
    return [o for o in options if o.startswith(current)]


def _matcher(magics: MlnbMagics) -> Callable[..., Any]:
    """An IPython (v2) matcher for ``%mlnb`` lines that silences the others there.

    On a ``%mlnb`` line, Jedi would read ``mnist-c`` as ``mnist - c`` and offer
    ``callable``; this matcher answers alone.  IPython completes the token after
    its last delimiter (``:`` and ``@`` are delimiters), so each completion is
    cut to that token.
    """
    from IPython.core.completer import SimpleCompletion, context_matcher

    @context_matcher()
    def mlnb_matcher(context: Any) -> dict[str, Any]:
        line = context.text_until_cursor
        if not line.lstrip().startswith(("%mlnb", "%%mlnb")):
            return {"completions": [], "suppress": False}
        word = "" if line.endswith((" ", "\t")) else line.split()[-1]
        cut = len(word) - len(context.token)
        found = [SimpleCompletion(text=c[cut:], type="mlnb") for c in complete(magics, line)]
        return {"completions": found, "suppress": True}

    return mlnb_matcher


def load(ipython: InteractiveShell) -> None:
    """Register the magics and their tab completion on *ipython*."""
    magics = MlnbMagics(ipython)
    ipython.register_magics(magics)
    matchers = ipython.Completer.custom_matchers
    matchers[:] = [m for m in matchers if getattr(m, "__name__", "") != "mlnb_matcher"]
    matchers.append(_matcher(magics))


def unload(ipython: InteractiveShell) -> None:
    """Remove the magics and their completion (``%unload_ext mlnb``)."""
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("mlnb", None)
    matchers = ipython.Completer.custom_matchers
    matchers[:] = [m for m in matchers if getattr(m, "__name__", "") != "mlnb_matcher"]

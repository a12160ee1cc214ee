"""``%%mlnb train``: run a cell that builds a model, then train it with :func:`mlnb.train`.

::

    %%mlnb train --name mnist-mlp --epochs 10 --register
    model = MLP()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=256)

What happens, in order:

1. The options are parsed first, so a typo fails before any of the cell runs
   (``$var`` and ``{var}`` in the magic line expand as in any magic).
   With ``--seed N`` torch, ``random`` and NumPy are seeded *before* the cell
   runs too, so the model's initial weights are reproducible: the same cell
   run twice with ``--seed 0`` gives the same history.
2. The cell body runs in the notebook's namespace as a cell would: IPython
   syntax (``%pip``, ``!ls``) and the shell's AST transformers apply, and an
   error shows its usual traceback pointing at the cell's line (an mlnb error
   raised by the cell's own code included); then nothing trains.  The body is
   transformed, compiled through the shell's compiler (which caches it for
   tracebacks) and ``exec``-ed in ``user_ns``, as ``%%time`` does.  Not
   ``shell.run_cell``: run nested inside a cell it fires the pre/post-run
   hooks a second time, displays the last expression, and catches and prints
   the error itself, so the magic would have to guess from its result whether
   to train.  Not ``shell.ex``: a bare ``exec`` knows no IPython syntax and its
   tracebacks show ``<string>`` with no source lines.
3. These names are picked from the namespace, whichever cell defined them (a
   data cell above is fine); when the cell itself binds one of two spellings,
   that one wins.  A name bound to ``None`` counts as absent, so
   ``val_loader = None`` trains without validation.

   - ``model``: required;
   - ``optimizer`` or ``opt``: required;
   - ``train_loader`` or ``train_data``: required;
   - ``loss_fn``: required unless ``--loss NAME`` names a ``torch.nn.functional`` loss;
   - ``val_loader`` or ``val_data``, ``scheduler``, ``metrics``: optional.

   A missing name, a value of the wrong type, an optimizer that does not hold
   the model's parameters (the model was rebuilt, the optimizer was not) or a
   scheduler over another optimizer is a one-line error naming the variable.
   ``--loss``/``--metrics`` beat a ``loss_fn``/``metrics`` left by an earlier
   cell, and conflict with one this cell binds.
4. :func:`mlnb.train` runs with the options as keywords (an option not given
   keeps ``mlnb.train``'s default), ``registry=`` the kernel's registry (the
   one ``%mlnb`` uses, also for the run's checkpoints) and ``source=`` the
   whole cell as written, magic line included, so a registered version records
   the code and options that trained it.
5. The :class:`~mlnb.training.Run` is the cell's result (it renders itself) and
   is stored as ``run`` in the namespace (``--out NAME`` for another name,
   ``--out ''`` for none).  Nothing is cached between calls: running the cell
   again starts a new run, or continues the last unfinished one with ``--resume``.

``tests/magics/test_magics_train.py`` runs each of these through a real IPython shell.
"""

from __future__ import annotations

import argparse
import ast
import keyword
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from mlnb.errors import InvalidArgument

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from mlnb.registry.client import Registry
    from mlnb.training import Run

__all__ = ["LOSSES", "ROLES", "Role", "add_arguments", "defined_names", "run"]

#: ``--loss`` choices: ``torch.nn.functional`` losses called as ``loss(outputs, targets)``.
LOSSES = (
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "huber_loss",
    "kl_div", "l1_loss", "mse_loss", "multilabel_soft_margin_loss", "nll_loss",
    "poisson_nll_loss", "smooth_l1_loss", "soft_margin_loss",
)


@dataclass(frozen=True)
class Role:
    """One ``mlnb.train`` argument the cell provides, and the names that can hold it."""

    keyword: str
    names: tuple[str, ...]
    required: bool = False
    example: str = ""


ROLES = (
    Role("model", ("model",), True, "model = MyNet()"),
    Role("optimizer", ("optimizer", "opt"), True,
         "optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)"),
    Role("train_loader", ("train_loader", "train_data"), True,
         "train_loader = DataLoader(TensorDataset(X, y), batch_size=64, shuffle=True)"),
    Role("val_loader", ("val_loader", "val_data")),
    Role("loss_fn", ("loss_fn",), True,
         "loss_fn = torch.nn.functional.cross_entropy (or --loss cross_entropy)"),
    Role("scheduler", ("scheduler",)),
    Role("metrics", ("metrics",)),
)

_EPILOG = """\
The cell runs first, in the notebook's namespace; then these names are trained:
  model, optimizer (or opt), train_loader (or train_data): required
  loss_fn: required unless --loss NAME (a torch.nn.functional loss)
  val_loader (or val_data), scheduler, metrics: optional (None counts as absent)
They may come from earlier cells; a name the cell binds wins over its other spelling.
Options not given keep mlnb.train's defaults. The Run is the cell's result and is
stored as `run` (--out NAME to choose, --out '' for none). --seed also seeds the
cell, so the model's initial weights repeat. Running the cell again starts a new
run; --resume continues the last unfinished run of --name.

example:
  %%mlnb train --name mnist-mlp --epochs 10 --loss cross_entropy --register
  model = MLP(); optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
  train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
"""


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _loss_name(text: str) -> str:
    if text not in LOSSES:
        from mlnb.refs import suggest

        raise argparse.ArgumentTypeError(
            f"unknown loss {text!r}{suggest(text, LOSSES)}; choose one of {', '.join(LOSSES)}, "
            "or define loss_fn in the cell"
        )
    return text


def _out_name(text: str) -> str:
    if text and (not text.isidentifier() or keyword.iskeyword(text)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a Python variable name")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``%%mlnb train`` options to *parser* (``mlnb.train`` keywords, dashed)."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    skip = argparse.SUPPRESS  # an option not given is not passed: mlnb.train's default holds
    add = parser.add_argument
    add("--name", default=skip, help="the run's name (checkpoints, --resume); default: "
        "the --register name, else 'run'")
    add("--epochs", type=int, default=skip, metavar="N", help="epochs to train (default 1)")
    add("--register", nargs="?", const=True, default=None, metavar="NAME",
        help="register the result: under NAME, or under --name when NAME is left out")
    add("--register-from", choices=("best", "last"), default=skip,
        help="register the best checkpoint (default when checkpoints are kept) or the last weights")
    add("--resume", action="store_true", default=skip,
        help="continue the last unfinished run of --name from its checkpoint")
    add("--loss", type=_loss_name, metavar="NAME",
        help="a torch.nn.functional loss, e.g. cross_entropy, mse_loss (instead of loss_fn)")
    add("--metrics", type=_csv, default=skip, metavar="M1,M2",
        help="validation metrics, e.g. accuracy (instead of a metrics variable)")
    add("--device", default=skip, help="auto (default), cpu, cuda, cuda:1, mps")
    add("--precision", default=skip, help="auto (default), fp32, bf16, fp16")
    add("--monitor", default=skip, metavar="COLUMN",
        help="the history column that ranks epochs (default val_loss, or train_loss)")
    add("--mode", choices=("min", "max"), default=skip,
        help="whether a lower or higher --monitor is better (default: from its name)")
    add("--early-stop", type=int, default=skip, metavar="N",
        help="stop after N epochs without a better --monitor")
    add("--grad-accum", type=int, default=skip, metavar="N",
        help="batches per optimizer step")
    add("--clip-grad", type=float, default=skip, metavar="NORM",
        help="clip the total gradient norm to NORM")
    add("--seed", type=int, default=skip, metavar="N",
        help="seed torch, random and NumPy before the cell runs and before training")
    add("--batch-size", type=int, default=skip, metavar="N",
        help="when train_loader/val_loader are tensors (X, y) or a TensorDataset")
    add("--no-shuffle", dest="shuffle", action="store_false", default=skip,
        help="with tensors: keep the training data in order")
    add("--keep", default=skip, metavar="POLICY", help="checkpoints kept: best:K,last:N or all")
    add("--no-checkpoint", dest="checkpoint", action="store_false", default=skip,
        help="write no checkpoints (the run cannot be resumed)")
    add("--track", type=_csv, default=skip, metavar="T1,T2", help="mlflow, wandb")
    add("--init-from", default=skip, metavar="REF",
        help="load these registered weights first, e.g. mnist-mlp@production")
    add("--log-every", type=int, default=skip, metavar="N",
        help="log the training loss every N batches")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--progress", choices=("auto", "widget", "text"), default=skip,
                       help="auto (default): the live monitor in a notebook, text elsewhere")
    shown.add_argument("--no-progress", dest="progress", action="store_const", const=False,
                       default=skip, help="show no progress")
    add("--out", type=_out_name, default="run", metavar="NAME",
        help="store the Run in this variable (default run; '' for none)")


#: ``mlnb.train`` keywords that options give directly (same name, dashes as underscores).
_PASSED = ("name", "epochs", "register_from", "resume", "device", "precision", "monitor", "mode",
           "early_stop", "grad_accum", "clip_grad", "seed", "batch_size", "shuffle", "keep",
           "checkpoint", "track", "init_from", "log_every", "progress")


def run(reg: Registry, args: argparse.Namespace, ns: dict[str, Any]) -> Run:
    """Run ``args.cell`` in *ns*, pick up what it built and train it; return the Run.

    ``args.cell``, ``args.line`` and ``args.shell`` are set by the ``%%mlnb``
    dispatcher (:mod:`mlnb.magics`).
    """
    options = {k: getattr(args, k) for k in _PASSED if hasattr(args, k)}
    register = args.register
    if register is True:
        if "name" not in options:
            raise UsageError("%%mlnb train: --register needs a model name: --register NAME, "
                             "or --name NAME --register")
        register = options["name"]
    if options.get("seed", -1) >= 0:  # a bad seed is left to mlnb.train's message
        from mlnb.training import seed_everything

        seed_everything(options["seed"])  # the cell's own random draws (initial weights) repeat
    try:
        bound = _run_cell(args.shell, args.cell, args.line)
    except BaseException:
        __tracebackhide__ = True  # noqa: F841 (the cell's error: IPython shows its frames)
        raise
    chosen = _pick(ns, bound, loss=args.loss, metrics=getattr(args, "metrics", None),
                   batch_size=options.get("batch_size"))
    picked = {role: value for role, (_, value) in chosen.items()}
    from mlnb.training import train

    try:
        result = train(
            picked.pop("model"), picked.pop("train_loader"), **picked, **options,
            register=register, registry=reg, source=f"%%mlnb {args.line}\n{args.cell}",
        )
    except InvalidArgument as err:
        # "the first batch of train_loader failed" names the cell's variable: train_data
        message = _as_cell_variables(str(err), chosen)
        if message == str(err):
            raise
        raise type(err)(message) from err
    if args.out:
        ns[args.out] = result
    return result


def _run_cell(shell: InteractiveShell, cell: str, line: str) -> list[str]:
    """Run *cell* in the user namespace like a notebook cell; return the names it binds.

    An exception from the cell's code (its syntax included) is marked, so the
    dispatcher shows it as a normal cell would: its own traceback, not one line.
    """
    try:
        source = shell.transform_cell(cell)
        # Tracebacks show the cell as written, magic line first, so line N is the cell's line N.
        text = f"%%mlnb {line}\n{source}"
        filename = shell.compile.cache(text, shell.execution_count, raw_code=text)
        tree = shell.compile.ast_parse("\n" + source, filename)
        bound = defined_names(tree)
        code = shell.compile(shell.transform_ast(tree), filename, "exec")
        exec(code, shell.user_global_ns, shell.user_ns)
    except BaseException as err:
        __tracebackhide__ = True  # noqa: F841 (read by IPython: show the cell's frames)
        try:
            err._mlnb_cell = True  # type: ignore[attr-defined]
        except (AttributeError, TypeError):
            pass
        raise
    return bound


def defined_names(tree: ast.AST) -> list[str]:
    """The names a module's top-level code binds, in order (not those inside functions)."""
    found: dict[str, None] = {}

    class Visitor(ast.NodeVisitor):
        def visit_Name(self, node: ast.Name) -> None:
            if isinstance(node.ctx, ast.Store):
                found[node.id] = None

        def visit_alias(self, node: ast.alias) -> None:
            if node.name != "*":
                found[node.asname or node.name.partition(".")[0]] = None

        def _scope(self, node: Any) -> None:  # its body is another scope: only its name binds
            found[node.name] = None
            for dec in node.decorator_list:
                self.visit(dec)

        visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scope

        def visit_Lambda(self, node: ast.Lambda) -> None:
            pass

        def visit_comprehension(self, node: ast.comprehension) -> None:
            self.visit(node.iter)  # its target is local to the comprehension
            for test in node.ifs:
                self.visit(test)

    Visitor().visit(tree)
    return list(found)


def _pick(ns: dict[str, Any], bound: list[str], *, loss: str | None, metrics: list[str] | None,
          batch_size: int | None) -> dict[str, tuple[str, Any]]:
    """``{keyword: (variable or option, value)}`` for ``mlnb.train``, checked; UsageError when not."""
    chosen: dict[str, tuple[str, Any]] = {}  # keyword -> (variable, value)
    for role in ROLES:
        present = [n for n in role.names if ns.get(n) is not None]
        ordered = [n for n in present if n in bound] + [n for n in present if n not in bound]
        if ordered:
            chosen[role.keyword] = (ordered[0], ns[ordered[0]])
    for option, value, role in (("--loss", loss, "loss_fn"), ("--metrics", metrics, "metrics")):
        if value is None:
            continue
        if role in chosen and chosen[role][0] in bound:
            raise UsageError(f"%%mlnb train: the cell defines {role} and {option} names "
                             f"another; keep one")
        chosen[role] = (option, _loss(value) if role == "loss_fn" else value)
    missing = [r for r in ROLES if r.required and r.keyword not in chosen]
    if missing:
        names = [" (or ".join(r.names) + (")" if len(r.names) > 1 else "") for r in missing]
        what = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        had = ", ".join(bound) if bound else "no names"
        examples = "; ".join(r.example for r in missing)
        raise UsageError(f"%%mlnb train: the cell must define {what}; it defined {had}. "
                         f"e.g. {examples}")
    _check_types(chosen, batch_size=batch_size)
    return chosen


def _as_cell_variables(message: str, chosen: dict[str, tuple[str, Any]]) -> str:
    """*message* with each ``mlnb.train`` keyword replaced by the cell variable that gave it."""
    for role, (var, _) in chosen.items():
        if var != role and var.isidentifier():  # not "--loss"
            message = re.sub(rf"\b{role}\b", var, message)
    return message


def _loss(name: str) -> Any:
    import torch.nn.functional as F

    return getattr(F, name)


def _check_types(chosen: dict[str, tuple[str, Any]], *, batch_size: int | None) -> None:
    """One-line errors that name the cell variable (``opt``), not the keyword."""
    import torch

    def bad(role: str, need: str) -> UsageError:
        var, value = chosen[role]
        return UsageError(f"%%mlnb train: {var} must be {need}, not {type(value).__name__}")

    model = chosen["model"][1]
    if not isinstance(model, torch.nn.Module):
        raise bad("model", "a torch.nn.Module")
    var, optimizer = chosen["optimizer"]
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise bad("optimizer", "a torch.optim.Optimizer, e.g. "
                  "torch.optim.AdamW(model.parameters(), lr=1e-3)")
    own = {id(p) for p in model.parameters()}
    if any(id(p) not in own for g in optimizer.param_groups for p in g["params"]):
        raise UsageError(f"%%mlnb train: {var} holds parameters that are not {chosen['model'][0]}'s "
                         f"(was the model rebuilt after the optimizer?); build {var} from "
                         f"{chosen['model'][0]}.parameters() in this cell")
    for role in ("train_loader", "val_loader"):
        if role in chosen:
            value = chosen[role][1]
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise bad(role, "a DataLoader, an iterable of (inputs, targets) batches, "
                          "or tensors (X, y) with --batch-size")
            if batch_size is None and _is_tensors(torch, value):
                raise UsageError(f"%%mlnb train: {chosen[role][0]} holds tensors: give "
                                 f"--batch-size N to cut them into batches")
    if "loss_fn" in chosen and not callable(chosen["loss_fn"][1]):
        raise bad("loss_fn", "callable as loss_fn(outputs, targets), e.g. "
                  "torch.nn.functional.cross_entropy")
    if "scheduler" in chosen:
        var, scheduler = chosen["scheduler"]
        if not callable(getattr(scheduler, "step", None)):
            raise bad("scheduler", "a torch.optim.lr_scheduler scheduler")
        if getattr(scheduler, "optimizer", optimizer) is not optimizer:
            raise UsageError(f"%%mlnb train: {var} steps another optimizer than "
                             f"{chosen['optimizer'][0]}; build it from {chosen['optimizer'][0]} "
                             "in this cell")


def _is_tensors(torch: Any, data: Any) -> bool:
    """Whether *data* is what mlnb.train batches itself: tensors (X, y) or a TensorDataset."""
    if isinstance(data, torch.utils.data.TensorDataset):
        return True
    return (isinstance(data, (tuple, list)) and bool(data)
            and all(isinstance(t, torch.Tensor) for t in data))

"""The ``mlnb`` command: the registry from a terminal.

Each subcommand parses its arguments, calls one :class:`~mlnb.Registry` method
and prints the result: an aligned table for people, or JSON with ``--json``
for scripts.  An :class:`~mlnb.errors.MlnbError` prints one line on stderr
and exits 1; bad usage exits 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from datetime import datetime
from typing import Any, Callable, Mapping, Sequence

from mlnb.display.text import ago, table
from mlnb.errors import MlnbError

__all__ = ["main"]


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # strict JSON has no NaN: "nan", "inf", "-inf"
    return value


def _versions_table(versions: Sequence[Any]) -> str:
    metric_names = sorted({k for v in versions for k in v.metrics})[:6]
    rows = [
        [v.version, v.status, " ".join("@" + a for a in v.aliases), ago(v.created_at),
         v.created_by, *[v.metrics.get(m) for m in metric_names]]
        for v in versions
    ]
    return table(rows, ["version", "status", "aliases", "created", "by", *metric_names])


def _show(v: Any) -> str:
    lines = [
        f"{v.ref}  {v.format}  {v.status}" + ("  " + " ".join("@" + a for a in v.aliases) if v.aliases else ""),
        f"created  {v.created_at:%Y-%m-%d %H:%M:%S} UTC by {v.created_by}",
    ]
    if v.description:
        lines.append(f"about    {v.description}")
    if v.parent:
        lines.append(f"parent   {v.parent}")
    for title, data in (("metrics", v.metrics), ("params", v.params), ("tags", v.tags)):
        if data:
            lines.append(f"{title}:")
            lines += [f"  {k} = {val if title != 'metrics' else format(val, '.6g')}"
                      for k, val in data.items()]
    lines.append("files:")
    lines.append(table([[f.path, f.size, f.sha256[:12]] for f in v.files],
                       ["  path", "size", "sha256"]))
    return "\n".join(lines)


def _audit_table(entries: Sequence[Any]) -> str:
    rows = [
        [e.id, f"{e.at:%Y-%m-%d %H:%M:%S}", e.user, e.action,
         f"{e.model}:{e.version}" if e.version else e.model,
         f"@{e.alias} {e.from_version or '-'} -> {e.to_version or '-'}" if e.alias else "",
         e.reason or ""]
        for e in entries
    ]
    return table(rows, ["id", "at (UTC)", "user", "action", "version", "alias", "reason"])


# -- commands: each takes (registry, args) and returns (result, text) ------------

def cmd_models(reg, args):  # noqa: ANN001
    models = reg.models()
    rows = [[m.name, m.versions, m.latest, " ".join(f"@{a}={v}" for a, v in m.aliases.items()),
             ago(m.updated_at)] for m in models]
    return models, table(rows, ["name", "versions", "latest", "aliases", "updated"])


def cmd_versions(reg, args):  # noqa: ANN001
    versions = reg.versions(args.name)
    return versions, _versions_table(versions)


def cmd_show(reg, args):  # noqa: ANN001
    v = reg.get(args.ref)
    return v, _show(v)


def cmd_register(reg, args):  # noqa: ANN001
    metrics = dict(_pair(p, float) for p in args.metric)
    params = dict(_pair(p, _guess) for p in args.param)
    tags = dict(_pair(p, str) for p in args.tag)
    v = reg.register(args.name, args.path, metrics=metrics, params=params, tags=tags,
                     description=args.description, parent=args.parent)
    return v, f"registered {v.ref} ({v.size} bytes in {len(v.files)} files)"


def cmd_promote(reg, args):  # noqa: ANN001
    if args.force:
        v = reg.promote(args.ref, args.alias, reason=args.reason, force=True)
    else:
        v = reg.promote(args.ref, args.alias, reason=args.reason)
    return v, f"{v.name}@{args.alias} -> {v.ref}"


def cmd_rollback(reg, args):  # noqa: ANN001
    v = reg.rollback(args.name, args.alias, reason=args.reason)
    return v, f"{v.name}@{args.alias} rolled back to {v.ref}"


def cmd_alias(reg, args):  # noqa: ANN001
    v = reg.set_alias(args.ref, args.alias, reason=args.reason)
    return v, f"{v.name}@{args.alias} -> {v.ref}"


def cmd_retire(reg, args):  # noqa: ANN001
    v = reg.retire(args.ref, reason=args.reason)
    return v, f"retired {v.ref}"


def cmd_lineage(reg, args):  # noqa: ANN001
    lin = reg.lineage(args.ref)
    lines = [lin.root] + [f"  {e.source} --{e.kind}--> {e.target}" for e in lin.edges]
    return lin, "\n".join(lines) if lin.edges else f"{lin.root}: no lineage recorded"


def cmd_audit(reg, args):  # noqa: ANN001
    entries = reg.audit(args.name, limit=args.limit)
    return entries, _audit_table(entries)


def cmd_sql(reg, args):  # noqa: ANN001
    df = reg.sql(args.query)
    return json.loads(df.to_json(orient="records", date_format="iso")), df.to_string(index=False)


def cmd_fsck(reg, args):  # noqa: ANN001
    report = reg.fsck(deep=not args.quick)
    lines = [repr(report)]
    lines += [f"missing: {m}" for m in report.missing]
    lines += [f"corrupt: {c}" for c in report.corrupt]
    if report.orphans:
        lines.append(f"orphaned blobs: {len(report.orphans)} (remove with `mlnb gc`)")
    return report, "\n".join(lines)


def cmd_gc(reg, args):  # noqa: ANN001
    report = reg.gc(dry_run=args.dry_run)
    return report, repr(report)


def cmd_export(reg, args):  # noqa: ANN001
    path = reg.export(args.ref, args.file)
    return {"ref": args.ref, "file": str(path)}, f"exported {args.ref} to {path}"


def cmd_import(reg, args):  # noqa: ANN001
    v = reg.import_bundle(args.file, name=args.name)
    return v, f"imported {args.file} as {v.ref}"


def cmd_server(settings, args):  # noqa: ANN001
    """Status or stop of the registry server; never starts one."""
    from mlnb.registry import server

    if settings.registry == ":memory:":
        return {"running": False}, "a :memory: registry has no server"
    paths = server.paths_for(settings.registry)
    pid = server.server_pid(settings.registry)
    if args.action == "stop":
        stopped = server.stop(settings.registry) if pid else False
        return {"stopped": stopped, "pid": pid}, (
            f"stopped the registry server (pid {pid})" if stopped else "no registry server running"
        )
    info = {"running": pid is not None, "pid": pid, "registry": settings.registry,
            "socket": str(paths["socket"]), "log": str(paths["log"])}
    text = (f"registry server running, pid {pid}" if pid else "no registry server running")
    text += f"\nregistry  {settings.registry}\nsocket    {paths['socket']}\nlog       {paths['log']}"
    return info, text


def _pair(text: str, cast: Callable[[str], Any]) -> tuple[str, Any]:
    from mlnb.refs import split_pair

    try:
        key, value = split_pair(text)
    except MlnbError as err:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}") from err
    try:
        return key, cast(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{key}: {err}") from err


def _guess(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlnb", description="mlnb model registry: list, inspect, promote, roll back, check.",
    )
    parser.add_argument("--home", help="registry home (default: $MLNB_HOME or ~/.mlnb)")
    parser.add_argument("--registry", help="registry file (default: HOME/registry.duckdb)")
    parser.add_argument("--storage", help="artifact store URL (default: HOME/artifacts)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func: Callable, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--json", action="store_true", help="print JSON for scripts")
        p.set_defaults(func=func)
        return p

    add("models", cmd_models, "list models")
    add("versions", cmd_versions, "list a model's versions").add_argument("name")
    add("show", cmd_show, "show one version (REF: name, name:3 or name@alias)").add_argument("ref")
    p = add("register", cmd_register, "register a file or folder as a new version")
    p.add_argument("name")
    p.add_argument("path")
    p.add_argument("--metric", action="append", default=[], metavar="K=V")
    p.add_argument("--param", action="append", default=[], metavar="K=V")
    p.add_argument("--tag", action="append", default=[], metavar="K=V")
    p.add_argument("--parent", metavar="REF")
    p.add_argument("--description")
    p = add("promote", cmd_promote, "point an alias (default production) at a version")
    p.add_argument("ref")
    p.add_argument("alias", nargs="?", default="production")
    p.add_argument("--reason")
    p.add_argument("--force", action="store_true",
                   help="promote although the model's quality gates do not pass (needs --reason)")
    p = add("rollback", cmd_rollback, "move an alias back to the version that held it before")
    p.add_argument("name")
    p.add_argument("--alias", default="production")
    p.add_argument("--reason")
    p = add("alias", cmd_alias, "point a free alias (not production/staging) at a version")
    p.add_argument("ref")
    p.add_argument("alias")
    p.add_argument("--reason")
    p = add("retire", cmd_retire, "retire a version (it loses its aliases)")
    p.add_argument("ref")
    p.add_argument("--reason")
    add("lineage", cmd_lineage, "show what a version came from and what came from it").add_argument("ref")
    p = add("audit", cmd_audit, "show the audit log, newest first")
    p.add_argument("name", nargs="?")
    p.add_argument("--limit", type=int, default=50)
    add("sql", cmd_sql, "run a read-only SELECT over the registry views").add_argument("query")
    p = add("fsck", cmd_fsck, "check every stored file against its hash")
    p.add_argument("--quick", action="store_true", help="check presence and size only")
    p = add("gc", cmd_gc, "delete blobs that no version references")
    p.add_argument("--dry-run", action="store_true", help="only list what would go")
    p = add("export", cmd_export, "write a version to a .tar.gz bundle")
    p.add_argument("ref")
    p.add_argument("file")
    p = add("import", cmd_import, "register the version in a bundle")
    p.add_argument("file")
    p.add_argument("--name", help="register under this model name instead")
    p = add("server", cmd_server, "show or stop the registry server (stop releases the file)")
    p.add_argument("action", nargs="?", choices=["status", "stop"], default="status")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mlnb`` command; return its exit status."""
    args = _parser().parse_args(argv)
    from mlnb.registry.client import Registry

    try:
        if args.func is cmd_server:  # must not start the server it reports on
            from mlnb.config import settings

            result, text = cmd_server(settings(args.home, args.registry, args.storage), args)
        else:
            with Registry(args.home, registry=args.registry, storage=args.storage) as reg:
                result, text = args.func(reg, args)
    except MlnbError as err:
        print(f"mlnb: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    except argparse.ArgumentTypeError as err:
        print(f"mlnb {args.command}: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(_jsonable(result), indent=2, allow_nan=False))
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The same registry work through mlnb and through MLflow, on one machine, in one run.

MLflow runs with a SQLite database (``sqlite:///TMP/mlflow.db`` as both the
tracking and the registry URI) and a local artifact root; mlnb with its
registry server (DuckDB) and a local artifact store, both inside one temporary
directory that is removed at the end.  Every row times the same work with
``time.perf_counter`` from this one client process and reports the median of
many repetitions, warm-up excluded:

* ``import``: ``import mlnb`` vs ``import mlflow``, each timed inside a fresh
  interpreter (interpreter start-up excluded);
* registering a version whose bytes are already stored: ``Registry.register``
  of a one-byte file with the same content each time (deduplicated, so only
  metadata is recorded), and the bare ``register`` request to the registry
  server; MLflow ``MlflowClient.create_model_version`` with a fixed source;
* getting a version by number and by alias;
* listing a model's versions at ``--versions`` and at ``--big-versions``;
* moving the ``production`` alias, and moving it then resolving it;
* registering a small torch MLP end to end (new random weights each time):
  ``Registry.register`` vs ``mlflow.pytorch.log_model(registered_model_name=...)``
  inside a run with MLflow's defaults (which infer pip requirements in a
  subprocess), in the pickle format and, MLflow's default, the pt2 format;
* storing and loading a random file of ``--artifact-mb`` MiB, new bytes each time:
  ``Registry.register`` + ``Registry.load`` (a verified copy) vs
  ``mlflow.log_artifact`` in a run + ``mlflow.artifacts.download_artifacts`` into
  a fresh folder (a copy, like mlnb's; without ``dst_path`` MLflow returns the
  stored file itself, which the notes report separately).

The two systems alternate in rounds (mlnb, MLflow, MLflow, mlnb, ...) so that a
burst of load from other processes falls on both.  A row where mlnb is not
faster is marked ``<< mlnb SLOWER``.

Run: ``PYTHONPATH=src python benchmarks/registry_vs_mlflow.py [--quick] [--json out.json]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"
MS = 1e3

# A step takes its repetition index (negative while warming up) and returns
# {measurement name: seconds}; one step can time several parts of one operation.
Step = Callable[[int], dict[str, float]]


@dataclass
class Row:
    """One line of the table: each side's samples in seconds, shown as medians in ms."""

    operation: str
    mlnb: list[float]
    mlflow: list[float]
    target_ms: float | None = None
    note: str = ""
    target_op: str = "<="  # how mlnb's median must compare with target_ms

    @property
    def mlnb_ms(self) -> float | None:
        """Median of mlnb's samples in milliseconds (None when not run)."""
        return statistics.median(self.mlnb) * MS if self.mlnb else None

    @property
    def mlflow_ms(self) -> float | None:
        """Median of MLflow's samples in milliseconds (None when not run)."""
        return statistics.median(self.mlflow) * MS if self.mlflow else None

    @property
    def ratio(self) -> float | None:
        """MLflow time / mlnb time: how many times faster mlnb is."""
        if self.mlnb_ms is None or self.mlflow_ms is None:
            return None
        return self.mlflow_ms / self.mlnb_ms


@dataclass
class Report:
    """Everything the run prints, also written as JSON with ``--json``."""

    machine: dict[str, Any]
    settings: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0


def _elapsed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * MS


def _alternate(mlnb: tuple[Step, int, int], mlflow: tuple[Step, int, int],
               rounds: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Run each side's ``(step, reps, warmup)``, the sides taking turns in *rounds* rounds.

    Warm-up steps (indices ``-warmup..-1``) run first and are not recorded.
    """
    sides = [(mlnb, defaultdict(list)), (mlflow, defaultdict(list))]
    for (step, _, warmup), _ in sides:
        for i in range(-warmup, 0):
            step(i)
    done = [0, 0]
    for r in range(rounds):
        order = [0, 1] if r % 2 == 0 else [1, 0]
        for s in order:
            (step, reps, _), samples = sides[s]
            upto = reps * (r + 1) // rounds
            while done[s] < upto:
                for key, seconds in step(done[s]).items():
                    samples[key].append(seconds)
                done[s] += 1
    return sides[0][1], sides[1][1]


def _fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "not run"
    if ms >= 10_000:
        return f"{ms / 1e3:.1f} s"
    if ms >= 1_000:
        return f"{ms / 1e3:.2f} s"
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


# -- machine -------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _machine() -> dict[str, Any]:
    from importlib.metadata import version

    import mlnb

    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "mlnb": mlnb.__version__,
        "duckdb": version("duckdb"),
        "mlflow": version("mlflow"),
        "torch": version("torch"),
        "sqlite": __import__("sqlite3").sqlite_version,
    }


# -- the rows --------------------------------------------------------------------


def _import_row(report: Report, reps: int) -> None:
    """Time ``import X`` in fresh interpreters, the two modules taking turns."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)}

    def child(code: str) -> Step:
        program = (
            "import time\n"
            "t = time.perf_counter()\n"
            f"{code}\n"
            "print(time.perf_counter() - t)\n"
        )

        def step(i: int) -> dict[str, float]:
            out = subprocess.run([sys.executable, "-c", program], env=env, check=True,
                                 capture_output=True, text=True).stdout
            return {"import": float(out.strip().splitlines()[-1])}

        return step

    pairs = [
        ("import (fresh interpreter)", "import mlnb", "import mlflow", 150.0, ""),
        ("import + client class", "import mlnb; mlnb.Registry",
         "import mlflow; mlflow.MlflowClient", None,
         "mlnb.Registry is lazy: it imports the registry client on first access"),
    ]
    for label, mine, theirs, target, note in pairs:
        a, b = _alternate((child(mine), reps, 1), (child(theirs), reps, 1), reps)
        report.rows.append(Row(label, a["import"], b["import"], target, note, target_op="<"))


class Bench:
    """The two clients, set up in one temporary directory."""

    def __init__(self, tmp: Path) -> None:
        import mlflow
        from mlflow import MlflowClient

        import mlnb

        self.tmp = tmp
        self.reg = mlnb.Registry()
        self.mlflow = mlflow
        uri = f"sqlite:///{tmp / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        self.experiment = self.client.create_experiment(
            "bench", artifact_location=(tmp / "mlflow-artifacts").as_uri()
        )
        self.source = tmp / "mlflow-source"  # fixed source of every MLflow version
        self.source.mkdir()
        self.tiny = tmp / "tiny.bin"  # one byte, the same each time: stored once
        self.tiny.write_bytes(b"x")
        self.tiny_entries: list[dict[str, Any]] = []

    def new_registry(self) -> Any:
        """Another client of the same registry, with its own connection."""
        import mlnb

        return mlnb.Registry()

    def close(self) -> None:
        """Stop the registry server this run started, and end any open MLflow run."""
        from mlnb.registry import server

        with contextlib.suppress(Exception):
            self.mlflow.end_run()
        self.reg.close()
        server.stop(self.reg.settings.registry)

    def raw_register(self, name: str) -> float:
        """Record a version of *name* whose one file is stored; return the request's time.

        These are the two requests ``Registry.register`` makes once the bytes are
        stored: ``hold`` (untimed: it belongs to storing the blob) and ``register``
        (timed), on the same connection, since holds belong to their connection.
        """
        request_id = uuid.uuid4().hex
        self.reg._call("hold", request_id=request_id,
                       shas=[f["sha256"] for f in self.tiny_entries])
        return _elapsed(lambda: self.reg._call(
            "register", request_id=request_id, files=self.tiny_entries,
            user=self.reg.user, name=name, format="files",
            metadata={"format_version": 1, "layout": "file", "name": self.tiny.name},
            metrics={}, params={}, tags={}, description=None, parent=None,
        ))


def _register_rows(b: Bench, report: Report, n: int, rounds: int) -> None:
    reg, client = b.reg, b.client
    first = reg.register("w", b.tiny)  # stores the blob once, before any timing
    b.tiny_entries = [{"path": f.path, "sha256": f.sha256, "size": f.size,
                       "media_type": f.media_type} for f in first.files]
    client.create_registered_model("m")
    client.create_registered_model("w")

    def mine(i: int) -> dict[str, float]:
        name = "w" if i < 0 else "m"
        raw = "w" if i < 0 else "m_raw"
        return {"public": _elapsed(lambda: reg.register(name, b.tiny)),
                "raw": b.raw_register(raw)}

    def theirs(i: int) -> dict[str, float]:
        name = "w" if i < 0 else "m"
        return {"public": _elapsed(
            lambda: client.create_model_version(name, str(b.source), run_id=None))}

    a, m = _alternate((mine, n, 20), (theirs, n, 20), rounds)
    report.rows.append(Row(
        "register a version (blob stored)", a["public"], m["public"], 2.0,
        "mlnb: Registry.register of an already-stored file; MLflow: create_model_version",
    ))
    report.rows.append(Row(
        "  same, metadata request only", a["raw"], m["public"], 2.0,
        "mlnb: the server's register request alone (the blob's hold taken untimed "
        "before it); MLflow: the same samples as above",
    ))


def _get_rows(b: Bench, report: Report, n: int, reps: int, rounds: int) -> None:
    reg, client = b.reg, b.client
    half = max(n // 2, 1)
    reg.promote(f"m:{half}", "production")
    client.set_registered_model_alias("m", "production", str(half))
    cases = [
        (f"get a version by number (m:{half})",
         lambda i: {"t": _elapsed(lambda: reg.get(f"m:{half}"))},
         lambda i: {"t": _elapsed(lambda: client.get_model_version("m", str(half)))}),
        ("get a version by alias (m@production)",
         lambda i: {"t": _elapsed(lambda: reg.get("m@production"))},
         lambda i: {"t": _elapsed(lambda: client.get_model_version_by_alias("m", "production"))}),
    ]
    for label, mine, theirs in cases:
        a, m = _alternate((mine, reps, 20), (theirs, reps, 20), rounds)
        report.rows.append(Row(label, a["t"], m["t"], 1.0))


def _list_row(b: Bench, report: Report, name: str, count: int, reps: int,
              target: float | None, with_mlflow: bool = True) -> None:
    reg, client = b.reg, b.client
    page = max(count, 10_000)  # MLflow's default page is 10,000; never fewer than all
    mine_count = len(reg.versions(name))
    if mine_count != count:
        raise AssertionError(f"listing {name}: mlnb gave {mine_count}; expected {count}")
    if with_mlflow:
        got = client.search_model_versions(f"name='{name}'", max_results=page)
        if len(got) != count or got.token:
            raise AssertionError(f"listing {name}: MLflow gave {len(got)} (next page "
                                 f"{got.token!r}); expected {count}")

    def mine(i: int) -> dict[str, float]:
        # A client keeps its last listing of a model and asks only for what changed
        # since, so the first listing by a new client is timed apart from a repeat.
        fresh = b.new_registry()
        try:
            first = _elapsed(lambda: fresh.versions(name))
        finally:
            fresh.close()
        return {"first": first, "again": _elapsed(lambda: reg.versions(name))}

    def theirs(i: int) -> dict[str, float]:
        return {"t": _elapsed(
            lambda: client.search_model_versions(f"name='{name}'", max_results=page))}

    if with_mlflow:
        a, m = _alternate((mine, reps, 3), (theirs, reps, 3), min(reps, 5))
        note = f"MLflow: search_model_versions(\"name='{name}'\", max_results={page}), one page"
    else:
        a, m = _alternate((mine, reps, 3), (theirs, 0, 0), 1)
        note = "MLflow not run: populating it took too long (see below)"
    report.rows.append(Row(f"list a model's {count:,} versions", a["first"], m["t"], target,
                           "mlnb: the first listing by a new client (made untimed); " + note))
    report.rows.append(Row(f"  same {count:,}, listed again", a["again"], m["t"], target,
                           "mlnb: a client that listed before gets only what changed "
                           "(nothing here); MLflow has no such cache: the same samples"))


def _populate(b: Bench, report: Report, name: str, count: int, limit_s: float) -> int:
    """Give *name* *count* versions on both sides (untimed); return MLflow's count."""
    start = time.perf_counter()
    for _ in range(count):
        b.raw_register(name)
    mine_s = time.perf_counter() - start
    b.client.create_registered_model(name)
    start = time.perf_counter()
    made = 0
    while made < count and time.perf_counter() - start < limit_s:
        b.client.create_model_version(name, str(b.source), run_id=None)
        made += 1
    theirs_s = time.perf_counter() - start
    report.notes.append(
        f"populating {name} with {count:,} versions took mlnb {mine_s:.1f} s (bare register "
        f"requests), MLflow {theirs_s:.1f} s for {made:,} (create_model_version)"
    )
    return made


def _alias_rows(b: Bench, report: Report, n: int, reps: int, rounds: int) -> None:
    reg, client = b.reg, b.client
    current = {"mlnb": max(n // 2, 1), "mlflow": max(n // 2, 1)}

    def pick(side: str, i: int) -> int:
        # Always a different version from the one holding the alias: moving an alias
        # onto the version that already holds it is a no-op in mlnb.
        k = (i * 7) % n + 1
        if k == current[side]:
            k = k % n + 1
        current[side] = k
        return k

    def mine(i: int) -> dict[str, float]:
        k = pick("mlnb", i)
        move = _elapsed(lambda: reg.promote(f"m:{k}", "production"))
        got: list[Any] = []
        resolve = _elapsed(lambda: got.append(reg.get("m@production")))
        assert got[0].version == k
        return {"move": move, "both": move + resolve}

    def theirs(i: int) -> dict[str, float]:
        k = pick("mlflow", i)
        move = _elapsed(lambda: client.set_registered_model_alias("m", "production", str(k)))
        got: list[Any] = []
        resolve = _elapsed(
            lambda: got.append(client.get_model_version_by_alias("m", "production")))
        assert int(got[0].version) == k
        return {"move": move, "both": move + resolve}

    a, m = _alternate((mine, reps, 10), (theirs, reps, 10), rounds)
    report.rows.append(Row(
        f"move an alias ({n:,} versions)", a["move"], m["move"], 3.0,
        "mlnb: promote (writes an audit row); MLflow: set_registered_model_alias",
    ))
    report.rows.append(Row("move an alias, then resolve it", a["both"], m["both"]))


def _torch_row(b: Bench, report: Report, reps: tuple[int, int], pt2: bool) -> None:
    import torch

    reg, mlflow = b.reg, b.mlflow

    def model() -> torch.nn.Module:
        # Fresh random weights each time, so no two registrations store the same bytes.
        return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(),
                                   torch.nn.Linear(128, 10))

    def mine(i: int) -> dict[str, float]:
        net = model()
        return {"t": _elapsed(lambda: reg.register("tiny", net))}

    def theirs(**kwargs: Any) -> Step:
        def log(net: torch.nn.Module) -> None:
            with mlflow.start_run(experiment_id=b.experiment):
                mlflow.pytorch.log_model(net, name="model", **kwargs)

        def step(i: int) -> dict[str, float]:
            net = model()
            # register_model prints "Successfully registered ..." straight to stderr.
            sink = io.StringIO()
            with contextlib.redirect_stderr(sink), contextlib.redirect_stdout(sink):
                return {"t": _elapsed(lambda: log(net))}

        return step

    params = sum(p.numel() for p in model().parameters())
    # MLflow 3.17's default format, pt2 (torch.export), refuses a model without an
    # input example, so "defaults" needs one choice: the pickle format, the cheapest
    # and the one older MLflow used by default, or pt2 with an example.
    variants = [("register a small torch model", dict(
        registered_model_name="tiny", serialization_format="pickle"),
        f"MLP of {params:,} parameters; mlnb: Registry.register (safetensors); MLflow: "
        "start_run + pytorch.log_model(registered_model_name=..., "
        "serialization_format='pickle'), other arguments default")]
    if pt2:
        variants.append(("  same, MLflow pt2 format", dict(
            registered_model_name="tiny_pt2", input_example=torch.randn(4, 64).numpy()),
            "MLflow's default format in this version (pt2) with the input_example it "
            "requires; mlnb as above"))
    for label, kwargs, note in variants:
        a, m = _alternate((mine, reps[0], 3), (theirs(**kwargs), reps[1], 1), reps[1])
        report.rows.append(Row(label, a["t"], m["t"], 20.0, note))


def _write_random(path: Path, size: int) -> None:
    chunk = 16 * 2**20
    with open(path, "wb") as f:
        left = size
        while left:
            f.write(os.urandom(min(chunk, left)))
            left -= min(chunk, left)


def _artifact_rows(b: Bench, report: Report, mb: int, reps: int) -> None:
    reg, mlflow = b.reg, b.mlflow
    work = b.tmp / "artifacts-in"
    work.mkdir()
    no_copy: list[float] = []

    def fresh(i: int) -> Path:
        # New bytes every time (no deduplication); warm-ups use 1 MiB.  The write
        # is flushed before timing so its write-back does not slow the timed copy.
        path = work / "big.bin"
        _write_random(path, mb * 2**20 if i >= 0 else 2**20)
        os.sync()
        return path

    def mine(i: int) -> dict[str, float]:
        path = fresh(i)
        got: list[Any] = []
        store = _elapsed(lambda: got.append(reg.register("big", path)))
        out: list[Path] = []
        load = _elapsed(lambda: out.append(reg.load(got[0].ref)))
        if out[0].stat().st_size != path.stat().st_size:
            raise AssertionError(f"mlnb loaded {out[0]} of the wrong size")
        shutil.rmtree(reg.settings.home / "checkouts", ignore_errors=True)
        os.sync()
        return {"store": store, "load": load, "both": store + load}

    def theirs(i: int) -> dict[str, float]:
        path = fresh(i)
        run_id: list[str] = []

        def store_it() -> None:
            with mlflow.start_run(experiment_id=b.experiment) as run:
                mlflow.log_artifact(str(path))
            run_id.append(run.info.run_id)

        store = _elapsed(store_it)
        dest = b.tmp / f"download-{uuid.uuid4().hex}"
        out: list[str] = []
        load = _elapsed(lambda: out.append(mlflow.artifacts.download_artifacts(
            run_id=run_id[0], artifact_path="big.bin", dst_path=str(dest))))
        if Path(out[0]).stat().st_size != path.stat().st_size:
            raise AssertionError(f"MLflow downloaded {out[0]} of the wrong size")
        if i >= 0:
            # A file:// artifact URI and no dst_path: MLflow hands back the stored file.
            # (With run_id and no dst_path it copies into a new temporary folder instead.)
            stored = f"{mlflow.get_run(run_id[0]).info.artifact_uri}/big.bin"
            got: list[str] = []
            no_copy.append(_elapsed(lambda: got.append(
                mlflow.artifacts.download_artifacts(artifact_uri=stored))))
            if not Path(got[0]).is_relative_to(b.tmp / "mlflow-artifacts"):
                raise AssertionError(f"MLflow copied the artifact to {got[0]}")
        shutil.rmtree(dest, ignore_errors=True)
        os.sync()
        return {"store": store, "load": load, "both": store + load}

    a, m = _alternate((mine, reps, 1), (theirs, reps, 1), reps)
    label = f"{mb} MiB artifact"
    report.rows.append(Row(f"store a {label}", a["store"], m["store"], None,
                           "mlnb: Registry.register (hash + copy + record); "
                           "MLflow: start_run + log_artifact"))
    report.rows.append(Row("load it back (a copy)", a["load"], m["load"], None,
                           "mlnb: Registry.load (copy + verify sha256); "
                           "MLflow: download_artifacts(dst_path=new folder)"))
    report.rows.append(Row(f"store + load a {label}", a["both"], m["both"]))
    report.notes.append(
        f"MLflow download_artifacts(artifact_uri=file://...) without dst_path returns the "
        f"stored file's own path, copying and checking nothing: {_median_ms(no_copy):.2f} ms "
        f"(median of {len(no_copy)}); mlnb has no such mode, Registry.load always copies "
        "and verifies"
    )


# -- printing ------------------------------------------------------------------


def _render(report: Report) -> str:
    m = report.machine
    s = report.settings
    big = (f"{s['big_versions']:,} versions for the big listing" if s["big_versions"]
           else "no big listing")
    lines = [
        "mlnb registry vs MLflow (SQLite registry, local artifact root), same machine, one run",
        f"machine: {m['cpu']}, {m['cpus']} CPUs, {m['platform']}",
        f"python {m['python']}  mlnb {m['mlnb']}  duckdb {m['duckdb']}  mlflow {m['mlflow']}  "
        f"torch {m['torch']}  sqlite {m['sqlite']}",
        f"settings: {s['versions']:,} versions, {big}, "
        f"{s['artifact_mb']} MiB artifact{', quick run' if s['quick'] else ''}; "
        "medians, warm-up excluded, mlnb server warm, both clients in this process",
        "",
    ]
    header = ("operation", "mlnb", "MLflow", "MLflow/mlnb", "reps", "mlnb target", "")
    table = []
    for r in report.rows:
        ratio = r.ratio
        ratio_text = "n/a" if ratio is None else f"{ratio:,.1f}x faster" if ratio >= 1 else (
            f"{ratio:.2f}x")
        flag = "<< mlnb SLOWER" if ratio is not None and ratio < 1 else ""
        if r.target_ms is None or r.mlnb_ms is None:
            target = ""
        else:
            ok = r.mlnb_ms < r.target_ms if r.target_op == "<" else r.mlnb_ms <= r.target_ms
            target = f"{r.target_op} {_fmt_ms(r.target_ms)} {'met' if ok else 'MISSED'}"
        table.append((r.operation, _fmt_ms(r.mlnb_ms), _fmt_ms(r.mlflow_ms), ratio_text,
                      f"{len(r.mlnb)}/{len(r.mlflow)}", target, flag))
    widths = [max(len(row[c]) for row in [header, *table]) for c in range(len(header))]
    right = {1, 2, 3, 4}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    lines.append(line(header))
    lines.append("  ".join("-" * w for w in widths[:-1]))
    lines.extend(line(row) for row in table)
    lines.append("")
    lines.append("notes:")
    for r in report.rows:
        if r.note:
            lines.append(f"- {r.operation.strip()}: {r.note}")
    lines.extend(f"- {n}" for n in report.notes)
    slower = [r.operation.strip() for r in report.rows if r.ratio is not None and r.ratio < 1]
    lines.append(f"- mlnb slower on: {', '.join(slower)}" if slower
                 else "- mlnb was faster on every row")
    lines.append(f"- run took {report.elapsed_s:.0f} s")
    return "\n".join(lines)


def _to_json(report: Report) -> dict[str, Any]:
    """The report as JSON: per row, medians, extremes and every sample, in ms."""
    rows = []
    for r in report.rows:
        row: dict[str, Any] = {"operation": r.operation.strip(), "target_ms": r.target_ms,
                               "ratio": r.ratio, "note": r.note}
        for side, samples in (("mlnb", r.mlnb), ("mlflow", r.mlflow)):
            ms = [round(x * MS, 4) for x in samples]
            row[side] = {"median_ms": statistics.median(ms) if ms else None,
                         "min_ms": min(ms, default=None), "max_ms": max(ms, default=None),
                         "reps": len(ms), "samples_ms": ms}
        rows.append(row)
    return {"machine": report.machine, "settings": report.settings, "rows": rows,
            "notes": report.notes, "elapsed_s": report.elapsed_s}


# -- main ------------------------------------------------------------------------


def _quiet() -> None:
    """Keep MLflow (and alembic under it) from logging, warning or phoning home."""
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["DO_NOT_TRACK"] = "true"
    os.environ["MLFLOW_LOGGING_LEVEL"] = "ERROR"  # mlflow sets its loggers from it on import
    # MLflow looks for a git checkout to tag runs with; no git, no warning.
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    warnings.filterwarnings("ignore")
    for name in ("mlflow", "alembic", "sqlalchemy", "git"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> Report:
    """Run the comparison, print the table, and return it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1000,
                        help="versions registered, and listed (default 1000)")
    parser.add_argument("--big-versions", type=int, default=10_000,
                        help="versions for the second listing; 0 skips it (default 10000)")
    parser.add_argument("--artifact-mb", type=int, default=100,
                        help="size of the stored and loaded artifact in MiB (default 100)")
    parser.add_argument("--artifact-reps", type=int, default=3,
                        help="repetitions of the artifact rows, each with new bytes (default 3)")
    parser.add_argument("--populate-limit", type=float, default=120.0,
                        help="seconds MLflow may take to create the big listing's versions "
                        "before that row is reported as not run (default 120)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 100 versions, 10 MiB, no big listing, few repetitions")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.json:
        args.json = args.json.resolve()  # the run changes directory
    if args.quick:
        args.versions, args.artifact_mb, args.big_versions = 100, 10, 0
    if args.versions < 2:
        parser.error("--versions must be at least 2")
    reps = {
        "import": 3 if args.quick else 9,
        "get": 200 if args.quick else 1000,
        "list": 10 if args.quick else 30,
        "alias": 100 if args.quick else 300,
        "torch": (10, 2) if args.quick else (30, 5),
        "artifact": 2 if args.quick else args.artifact_reps,
    }
    rounds = 4 if args.quick else 10

    started = time.perf_counter()
    _quiet()
    with tempfile.TemporaryDirectory(prefix="mlnb-vs-mlflow-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["MLNB_HOME"] = str(tmp / "mlnb")
        os.environ["MLNB_USER"] = "bench"
        os.environ["MLNB_IDLE"] = "300"  # the server leaves by itself if this run dies
        for var in ("MLNB_REGISTRY", "MLNB_STORAGE"):
            os.environ.pop(var, None)
        os.chdir(tmp)  # anything MLflow writes relative to the cwd stays in tmp

        report = Report(machine=_machine(), settings={
            "versions": args.versions, "big_versions": args.big_versions,
            "artifact_mb": args.artifact_mb, "quick": args.quick, "reps": reps,
        })
        _import_row(report, reps["import"])
        bench = Bench(tmp)
        try:
            _register_rows(bench, report, args.versions, rounds)
            _get_rows(bench, report, args.versions, reps["get"], rounds)
            target = 5.0 if args.versions == 1000 else 30.0 if args.versions == 10_000 else None
            _list_row(bench, report, "m", args.versions, reps["list"], target)
            _alias_rows(bench, report, args.versions, reps["alias"], rounds)
            if args.big_versions:
                big = args.big_versions
                made = _populate(bench, report, "big_m", big, args.populate_limit)
                _list_row(bench, report, "big_m", big, max(reps["list"] // 2, 5),
                          30.0 if big == 10_000 else None, with_mlflow=made == big)
                if made < big:
                    report.notes.append(
                        f"MLflow's listing of {big:,} versions not run: it created only "
                        f"{made:,} in the {args.populate_limit:.0f} s allowed (--populate-limit)"
                    )
            _torch_row(bench, report, reps["torch"], pt2=not args.quick)
            _artifact_rows(bench, report, args.artifact_mb, reps["artifact"])
        finally:
            bench.close()
            os.chdir("/")
    report.elapsed_s = time.perf_counter() - started
    print(_render(report))
    if args.json:
        args.json.write_text(json.dumps(_to_json(report), indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()

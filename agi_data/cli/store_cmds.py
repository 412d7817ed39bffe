"""``agi store``: list, show, verify, import, export and remove runs.

Read-only commands (``ls``, ``show``, ``verify``, ``export``) never create a
store: a path that holds none is an error. ``ls`` and ``show`` print a table
on a terminal and plain tab-separated lines (or JSON with ``--json``)
otherwise; a run id is never shortened.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .options import AgiCLIError, fail_cleanly, store_option

console = Console()

LS_COLUMNS = ("run_id", "frames", "atoms", "species", "duration_ps", "temperature_K", "potential", "wannier_frames",
              "problem")


def _open(store_path, *, create: bool = False):
    from ..store import open_store

    return open_store(store_path, create=create) if store_path is not None else open_store(create=create)


def progress_bar(description: str, total: int | None) -> Progress:
    """The progress display used by every long store command."""
    return Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console, transient=False, disable=not console.is_terminal and total is None)


def _plain_value(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _json_value(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")


@click.group()
def store() -> None:
    """The Zarr store of trajectories and Wannier centres."""


@store.command("ls")
@json_option
@store_option
@fail_cleanly()
def ls(as_json, store_path) -> None:
    """One line per run (damaged runs included, with their problem)."""
    s = _open(store_path)
    table = s.runs()
    rows = [{c: _json_value(row[c]) for c in table.columns} for _, row in table.iterrows()]
    if as_json:
        click.echo(json.dumps({"store": str(s.root), "runs": rows}, indent=1))
        return
    if not rows:
        click.echo(f"no runs in {s.root}")
        return
    columns = LS_COLUMNS if any(r["problem"] for r in rows) else LS_COLUMNS[:-1]
    if not console.is_terminal:
        click.echo("\t".join(columns))
        for r in rows:
            click.echo("\t".join(_plain_value(r[c]) for c in columns))
        return
    t = Table(title=str(s.root))
    for col in columns:
        width = max(len(col), *(len(r["run_id"]) for r in rows)) if col == "run_id" else None
        t.add_column(col, no_wrap=col == "run_id", min_width=width, overflow="fold")
    for r in rows:
        t.add_row(*(_plain_value(r[c]) for c in columns), style="red" if r["problem"] else None)
    console.print(t, crop=False)


def _show_payload(s, run_id, version) -> dict:
    from ..store import StoreError

    ds = s.trajectory(run_id, version)
    out = {
        "run_id": run_id,
        "version": ds.attrs.get("store_version"),
        "attrs": s.attrs(run_id, version),
        "variables": {name: {"dims": list(v.dims), "shape": list(v.shape), "dtype": str(v.dtype),
                             "units": v.attrs.get("units", "")} for name, v in ds.data_vars.items()},
        "history": [{"version": r.version, "written_at": str(r.written_at), "message": r.message}
                    for r in s.history(run_id).itertuples()],
    }
    try:
        ws = s.wannier(run_id, version)
        out["wannier"] = {"frames": int(ws.sizes["frame"]), "centres_per_frame": int(ws.sizes["wannier"]),
                          "attrs": {k: v for k, v in ws.attrs.items()}}
    except StoreError:
        out["wannier"] = None
    return out


@store.command("show")
@click.argument("run_id")
@click.option("--version", default=None, help="A version id (default: the latest).")
@json_option
@store_option
@fail_cleanly()
def show(run_id, version, as_json, store_path) -> None:
    """A run's variables, every attribute, Wannier centres and history."""
    s = _open(store_path)
    info = _show_payload(s, run_id, version)
    if as_json:
        click.echo(json.dumps(info, indent=1, default=str))
        return
    click.echo(f"run_id\t{info['run_id']}")
    click.echo(f"version\t{info['version']}")
    click.echo("variables:")
    for name, v in info["variables"].items():
        click.echo(f"  {name}\t{tuple(v['dims'])}\t{tuple(v['shape'])}\t{v['dtype']}\t{v['units']}")
    click.echo("attributes:")
    for key, value in sorted(info["attrs"].items()):
        click.echo(f"  {key}\t{json.dumps(value, default=str)}")
    if info["wannier"] is None:
        click.echo("wannier:\tnone")
    else:
        w = info["wannier"]
        click.echo(f"wannier:\t{w['frames']} frames × {w['centres_per_frame']} centres")
        for key, value in sorted(w["attrs"].items()):
            click.echo(f"  {key}\t{json.dumps(value, default=str)}")
    click.echo("history (newest first):")
    for h in info["history"]:
        click.echo(f"  {h['version']}\t{h['written_at']}\t{h['message']}")


@store.command("verify")
@click.argument("run_ids", nargs=-1)
@json_option
@store_option
@fail_cleanly()
def verify(run_ids, as_json, store_path) -> None:
    """Check every run (or the RUN_IDS given): repository, every version, every checksum. Exit 1 on any problem."""
    from ..store.verify import verify_store

    s = _open(store_path)
    n = len(run_ids or s.run_ids())
    if as_json:
        report = verify_store(s, run_ids=list(run_ids))
        click.echo(json.dumps({"ok": report.ok, "runs": {r.run_id: {"ok": r.ok, "versions": r.versions,
                                                                     "chunks_read": r.chunks_read,
                                                                     "problems": r.problems, "notes": r.notes}
                                                          for r in report.per_run.values()}}, indent=1))
    else:
        with progress_bar("verifying", n) as bar:
            task = bar.add_task("verify", total=n)
            report = verify_store(s, progress=lambda _run: bar.advance(task), run_ids=list(run_ids))
        for r in report.per_run.values():
            state = "OK" if r.ok else "DAMAGED"
            click.echo(f"{r.run_id}\t{state}\t{r.versions} versions\t{r.chunks_read} chunks")
            for p in r.problems:
                click.echo(f"  problem: {p}")
            for note in r.notes:
                click.echo(f"  note: {note}")
        click.echo(f"{report.runs} runs, {report.versions} versions, {report.chunks_read} chunks read")
        click.echo("store OK" if report.ok else f"damaged runs: {' '.join(report.damaged)}")
    if not report.ok:
        sys.exit(1)


def _temperature(ctx, param, value):
    if value is not None and (not math.isfinite(value) or value <= 0):
        raise click.BadParameter(f"the temperature must be a finite number of K > 0, got {value}")
    return value


@store.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("run_id")
@click.option("--timestep-ps", type=float, default=None,
              help="Time between the file's frames, ps (required except for H5MD, which records it).")
@click.option("--format", "fmt", default=None,
              help="extxyz, traj, lammps-dump-text or h5md (default: from the extension).")
@click.option("--type-map", default=None, help="LAMMPS types / H5MD species labels to elements, e.g. 1=Ag,2=I.")
@click.option("--units", default=None, help="LAMMPS unit style of a dump (metal, real, …): dumps do not record it.")
@click.option("--temperature", "temperature_K", type=float, default=None, callback=_temperature,
              help="Temperature of the run, K.")
@store_option
@fail_cleanly()
def import_(path, run_id, timestep_ps, fmt, type_map, units, temperature_K, store_path) -> None:
    """Import a trajectory file (extxyz, ASE .traj, LAMMPS dump, H5MD) as a new run (all of it or nothing)."""
    from ..store import validate
    from ..store.io import check_source, import_trajectory, parse_type_map

    validate.run_id(run_id)  # everything that can be checked, before a store is created for it
    is_h5md = fmt == "h5md" or (fmt is None and path.suffix.lower() in (".h5md", ".h5"))
    if is_h5md:
        if not path.is_file():
            raise AgiCLIError(f"{path} is not a file")
    else:
        if timestep_ps is None:
            raise click.UsageError("--timestep-ps is required for this format (only H5MD records its time step)")
        validate.timestep(timestep_ps)
        check_source(path, fmt, parse_type_map(type_map), units)
    s = _open(store_path, create=True)
    attrs = {"temperature_K": temperature_K} if temperature_K is not None else {}
    with progress_bar(f"importing {path.name}", None) as bar:
        task = bar.add_task("import", total=None)
        if is_h5md:
            from ..interop.h5md import import_h5md

            n = import_h5md(s, path, run_id, species_map=parse_type_map(type_map), attrs=attrs,
                            progress=lambda k: bar.advance(task, k))
        else:
            n = import_trajectory(s, path, run_id, timestep_ps=timestep_ps, fmt=fmt,
                                  type_map=parse_type_map(type_map), units=units, attrs=attrs,
                                  progress=lambda k: bar.advance(task, k))
    click.echo(f"imported {n} frames into run {run_id!r} (version {s.version(run_id)})")


@store.command("export")
@click.argument("run_id")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["extxyz", "h5md", "zarr"]), default=None,
              help="Default: from the name: extxyz for *.xyz/*.extxyz, h5md for *.h5md/*.h5, else zarr.")
@click.option("--version", default=None, help="A version id (default: the latest).")
@store_option
@fail_cleanly()
def export(run_id, out, fmt, version, store_path) -> None:
    """Export a run to extended XYZ, H5MD 1.1 or plain Zarr (readable without agi-data)."""
    from ..store.io import export_extxyz, export_target, export_zarr

    s = _open(store_path)
    export_target(out)
    by_suffix = {".xyz": "extxyz", ".extxyz": "extxyz", ".h5md": "h5md", ".h5": "h5md"}
    fmt = fmt or by_suffix.get(out.suffix.lower(), "zarr")
    if fmt in ("extxyz", "h5md"):
        from ..interop.h5md import export_h5md

        write = export_extxyz if fmt == "extxyz" else export_h5md
        total = s.trajectory(run_id, version).sizes["time"]
        with progress_bar(f"exporting {run_id}", total) as bar:
            task = bar.add_task("export", total=total)
            write(s, run_id, out, version=version, progress=lambda k: bar.advance(task, k))
    else:
        export_zarr(s, run_id, out, version=version)
    click.echo(f"wrote {out}")


@store.command("copy")
@click.argument("run_id")
@click.option("--to", "destination", required=True,
              help="Destination store: a directory or s3://bucket/prefix (made if new and empty).")
@store_option
@fail_cleanly()
def copy(run_id, destination, store_path) -> None:
    """Copy a run with every version to another store (local ↔ S3); version ids stay the same."""
    from ..store.copy import copy_run
    from ..store.location import is_url

    source = _open(store_path)
    dest = _open(destination if is_url(destination) else Path(destination).expanduser().resolve(), create=True)
    with progress_bar(f"copying {run_id}", None) as bar:
        task = bar.add_task("copy", total=None)
        version = copy_run(source, run_id, dest, progress=lambda n: bar.advance(task, n))
    click.echo(f"copied {run_id} to {dest.root} at version {version}")


@store.command("rm")
@click.argument("run_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (for scripts).")
@store_option
@fail_cleanly()
def rm(run_id, yes, store_path) -> None:
    """Remove a run and its whole history (damaged runs too). Asks first unless --yes."""
    s = _open(store_path)
    if run_id not in s:
        s.version(run_id)  # raises the store's "no run" error, with the known runs
    if not yes and not click.confirm(f"Remove run {run_id!r} and its whole history from {s.root}?"):
        raise AgiCLIError(f"run {run_id!r} not removed (not confirmed)", "answer y, or pass --yes in scripts")
    s.delete_run(run_id)
    click.echo(f"removed run {run_id!r}")

"""``agi store``: list, show, verify, import and export runs."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .options import fail_cleanly, store_option

console = Console()
def _open(store_path):
    from .. import open_store

    return open_store(store_path)


def progress_bar(description: str, total: int | None) -> Progress:
    """The progress display used by every long store command."""
    return Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console, transient=False, disable=not console.is_terminal and total is None)


@click.group()
def store() -> None:
    """The Zarr store of trajectories and Wannier centres."""


@store.command("ls")
@store_option
@fail_cleanly()
def ls(store_path) -> None:
    """One line per run."""
    s = _open(store_path)
    table = s.runs()
    if table.empty:
        console.print(f"no runs in {s.root}")
        return
    columns = ("run_id", "frames", "atoms", "species", "duration_ps", "temperature_K", "potential", "wannier_frames")
    t = Table(title=str(s.root))
    for col in columns:
        t.add_column(col)
    for _, row in table.iterrows():
        t.add_row(*(f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in columns))
    console.print(t)


@store.command("show")
@click.argument("run_id")
@click.option("--version", default=None, help="A version id (default: the latest).")
@store_option
@fail_cleanly()
def show(run_id, version, store_path) -> None:
    """A run's variables, metadata and history."""
    s = _open(store_path)
    ds = s.trajectory(run_id, version)
    console.print(ds)
    from ..store import StoreError

    try:
        console.print(s.wannier(run_id, version))
    except StoreError:
        console.print("(no Wannier centres)")
    console.print(s.history(run_id).head(10).to_string(index=False))


@store.command("verify")
@store_option
@fail_cleanly()
def verify(store_path) -> None:
    """Read every chunk of every run and check every recorded version."""
    from ..store.verify import verify_store

    s = _open(store_path)
    with progress_bar("verifying", len(s.run_ids())) as bar:
        task = bar.add_task("verify", total=len(s.run_ids()))
        report = verify_store(s, progress=lambda _run: bar.advance(task))
    console.print(f"{report.runs} runs, {report.versions} versions, {report.chunks_read} chunks read")
    if not report.ok:
        for p in report.problems:
            console.print(f"[red]problem:[/red] {p}")
        sys.exit(1)
    console.print("[green]store OK[/green]")


@store.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("run_id")
@click.option("--timestep-ps", type=float, required=True, help="Time between the file's frames, ps.")
@click.option("--format", "fmt", default=None, help="extxyz, traj or lammps-dump-text (default: from the extension).")
@click.option("--type-map", default=None, help="LAMMPS types to elements, e.g. 1=Ag,2=I.")
@click.option("--temperature", "temperature_K", type=float, default=None, help="Temperature of the run, K.")
@store_option
@fail_cleanly()
def import_(path, run_id, timestep_ps, fmt, type_map, temperature_K, store_path) -> None:
    """Import a trajectory file (extxyz, ASE .traj, LAMMPS dump) as a new run."""
    from ..store.io import import_trajectory, parse_type_map

    s = _open(store_path)
    attrs = {"temperature_K": temperature_K} if temperature_K else {}
    with progress_bar(f"importing {path.name}", None) as bar:
        task = bar.add_task("import", total=None)
        n = import_trajectory(s, path, run_id, timestep_ps=timestep_ps, fmt=fmt, type_map=parse_type_map(type_map),
                              attrs=attrs, progress=lambda k: bar.advance(task, k))
    console.print(f"imported {n} frames into run {run_id!r} (version {s.version(run_id)})")


@store.command("export")
@click.argument("run_id")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["extxyz", "zarr"]), default=None,
              help="Default: zarr for a directory name, extxyz for *.xyz/*.extxyz.")
@click.option("--version", default=None, help="A version id (default: the latest).")
@store_option
@fail_cleanly()
def export(run_id, out, fmt, version, store_path) -> None:
    """Export a run to extended XYZ or plain Zarr (readable without agi-data)."""
    from ..store.io import export_extxyz, export_zarr

    s = _open(store_path)
    fmt = fmt or ("extxyz" if out.suffix in (".xyz", ".extxyz") else "zarr")
    if fmt == "extxyz":
        total = s.trajectory(run_id, version).sizes["time"]
        with progress_bar(f"exporting {run_id}", total) as bar:
            task = bar.add_task("export", total=total)
            export_extxyz(s, run_id, out, version=version, progress=lambda k: bar.advance(task, k))
    else:
        export_zarr(s, run_id, out, version=version)
    console.print(f"wrote {out}")

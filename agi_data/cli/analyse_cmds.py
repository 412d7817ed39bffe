"""``agi analyse RUN [--wannier] [-o DIR]``: the demo's report for any store run.

    agi analyse demo-allegro-750K-1a2b3c --wannier -o report/
    agi store import traj.extxyz imported --timestep-ps 0.01 && agi analyse imported
    agi analyse RUN --store s3://bucket/agi --scheduler tcp://head:8786   # on a Dask cluster
    agi analyse RUN --scheduler local:4                                  # 4 worker processes here

Figures, numbers with units, errors and the parameters they were computed
with, ``reproduce.py`` next to them, and the provenance page where the run
records its AiiDA node; the analyses the run's data do not allow are listed
as skipped, with the reason. ``--scheduler`` (or ``AGI_DASK_SCHEDULER``) runs
the analyses' Dask computations on that scheduler; the workers open the store
themselves, so they must reach it (docs/cluster.md, "Distributed analyses").
"""

from __future__ import annotations

from pathlib import Path

import click

from .options import AgiCLIError, fail_cleanly, run_id_argument, scheduler_option, store_option


@click.command("analyse")
@run_id_argument
@click.option("--wannier", is_flag=True, help="also the paddlewheel analyses on the run's Wannier centres")
@click.option("-o", "--output", "output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="report directory (default: <data root>/reports/analyse-RUN-<time>)")
@click.option("--provenance/--no-provenance", default=True, show_default=True,
              help="write the provenance page when the run records its AiiDA node")
@store_option
@scheduler_option
@fail_cleanly()
def analyse_cmd(run_id: str, wannier: bool, output: Path | None, provenance: bool, store_path,
                scheduler: str | None) -> None:
    """Every analysis of the demo's report on store run RUN_ID, written as a report."""
    import re
    import time

    from rich.console import Console

    from agi_data import open_store
    from agi_data.analysis._common import dask_scheduler
    from agi_data.config import reports_path
    from agi_data.demo.run_report import AnalyseError, analyse_run

    if store_path is not None and "://" not in str(store_path) and not Path(store_path).is_dir():
        raise AgiCLIError(f"no store at {store_path}", "give the directory of an existing store (--store)")
    console = Console()
    with dask_scheduler(scheduler) as client:  # a bad address is refused before the store is opened
        if client is not None:
            n = len(client.scheduler_info(n_workers=-1).get("workers", {}))
            console.print(f"[bold]dask scheduler:[/bold] {client.scheduler.address} ({n} workers)")
        store = open_store(store_path)
        if output is None:
            safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id)
            output = reports_path() / f"analyse-{safe}-{time.strftime('%Y%m%d-%H%M%S')}"
        try:
            res = analyse_run(store, run_id, output, wannier=wannier, provenance=provenance,
                              progress=lambda name: console.print(f"  {name}"))
        except AnalyseError as err:
            raise AgiCLIError(str(err)) from None
    for name, why in res.skipped:
        console.print(f"[yellow]skipped[/yellow] {name}: {why}")
    console.print(f"[bold green]report:[/bold green] {res.html}")
    console.print(f"[bold]reproduce:[/bold] python {res.html.parent / 'reproduce.py'}")
    if res.provenance_page:
        console.print(f"[bold]provenance:[/bold] {res.provenance_page}")


"""``agi demo``: the whole chain on a small α-AgI cell, then a report."""

from __future__ import annotations

from pathlib import Path

import click

from .options import AgiCLIError, store_option


def _check_protocol(ctx, param, value):
    from agi_data.demo.pipeline import chain_protocols

    known = chain_protocols()
    if value not in known:
        raise click.BadParameter(f"{value!r} is not a protocol of the demo chain; choose one of {sorted(known)}")
    return value


@click.command("demo")
@click.option("--protocol", default="demo", show_default=True, callback=_check_protocol,
              help="fast: CI-sized (minutes); demo: a laptop (~15 min on 2 cores); study: 108 ions, the friction "
                   "comparison (stages of up to ~90 min on 2 cores); production: the study at the paper's length "
                   "(40 ps at 0.5 fs). From agi_data/protocols/demo.yaml and study.yaml.")
@click.option("--force", is_flag=True, help="Run every stage again, even those the provenance says are done.")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write the report (default: <data root>/reports/<timestamp>).")
@store_option
def demo_cmd(protocol: str, force: bool, report_dir: Path | None, store_path: Path | None) -> None:
    """Reference DFT → Allegro training → Allegro and classical MD → Wannier centres → every analysis → report.

    Resumable: a rerun reuses every stage that finished, found from the provenance graph.
    """
    from rich.console import Console

    from agi_data.aiida.setup import SetupError, load_agi_profile, setup
    from agi_data.demo.pipeline import Demo, DemoError

    console = Console()
    try:
        setup(quiet=True)
        load_agi_profile()
        demo = Demo(protocol, store_path=store_path, console=console)
        html = demo.run(report_dir=report_dir, force=force)
    except (DemoError, SetupError) as err:
        raise AgiCLIError(str(err)) from None
    _print_summary(console, demo)
    console.print(f"\n[bold green]report:[/bold green] {html}")
    console.print(f"[bold]markdown:[/bold] {html.with_suffix('.md')}")
    console.print(f"[bold]provenance:[/bold] {html.parent / 'provenance.html'}  (also: agi provenance "
                  f"{demo.run_id('md_allegro')})")


def _print_summary(console, demo) -> None:
    """The stage timings and the physics checks (pass / miss) in the terminal, as in the report."""
    from rich.table import Table

    timings = Table(title="stages")
    for col in ("stage", "seconds", "status"):
        timings.add_column(col)
    for stage, seconds, status in demo.report_timings:
        timings.add_row(stage, f"{seconds:.0f}", status)
    console.print(timings)
    if demo.checks:
        checks = Table(title="physics checks")
        for col in ("check", "model", "value", "target", "verdict"):
            checks.add_column(col)
        for c in demo.checks:
            checks.add_row(c.name, c.label, f"{c.value:.4g}", c.target,
                           f"[green]{c.verdict}[/green]" if c.passed else f"[red]{c.verdict}[/red]")
        console.print(checks)

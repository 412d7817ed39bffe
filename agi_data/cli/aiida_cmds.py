"""``agi setup`` and ``agi provenance``: the AiiDA side of agi-data."""

from __future__ import annotations

import json
import time

import click


@click.command("setup")
@click.option("--quiet", "-q", is_flag=True, help="Print only errors and the one-line summary.")
@click.option("--profile", default=None, help="AiiDA profile name (default: agi, or $AGI_AIIDA_PROFILE).")
@click.option("--aiida-path", type=click.Path(file_okay=False), default=None,
              help="Where the AiiDA configuration lives (default: $AIIDA_PATH, else <data root>/aiida).")
@click.option("--pseudos", type=click.Choice(["shipped", "ld1"]), default="shipped", show_default=True,
              help="Install the shipped UPF files, or regenerate them with ld1.x first.")
def setup_cmd(quiet: bool, profile: str | None, aiida_path: str | None, pseudos: str) -> None:
    """Create (or check) the AiiDA profile, localhost computer, codes and pseudopotential family. Idempotent."""
    from agi_data.aiida.setup import SetupError, setup

    t0 = time.perf_counter()
    try:
        report = setup(profile=profile, aiida_path=aiida_path, pseudos=pseudos, quiet=quiet)
    except SetupError as exc:
        raise click.ClickException(str(exc)) from None
    dt = time.perf_counter() - t0
    if quiet:
        click.echo(f"agi setup: AiiDA profile '{report.profile}' ready ({dt:.1f} s); "
                   f"use verdi with AIIDA_PATH={report.aiida_path}")
        return
    click.echo(f"AiiDA profile   {report.profile} (core.sqlite_dos + core.zeromq broker)")
    click.echo(f"configuration   {report.aiida_path}")
    click.echo(f"computer        {report.computer}")
    for label, full in report.codes.items():
        click.echo(f"code            {full}")
    click.echo(f"pseudo family   {report.family}")
    click.echo(f"ready in {dt:.1f} s. To use verdi on this profile:\n"
               f"  export AIIDA_PATH={report.aiida_path}\n"
               f"  verdi daemon start && verdi process list -a")


@click.command("provenance")
@click.argument("run_id")
@click.option("--store", "store_path", type=click.Path(), default=None, help="Store directory (default: the data root's).")
@click.option("--profile", default=None, help="AiiDA profile holding the nodes (default: the project's).")
@click.option("--json", "as_json", is_flag=True, help="Print the chain as JSON.")
def provenance_cmd(run_id: str, store_path: str | None, profile: str | None, as_json: bool) -> None:
    """Print how RUN_ID was made: the AiiDA nodes, codes, pseudopotentials (md5) and versions."""
    from agi_data import open_store
    from agi_data.aiida.provenance import ProvenanceError, format_provenance, run_provenance
    from agi_data.aiida.setup import load_agi_profile

    load_agi_profile(profile)
    try:
        info = run_provenance(open_store(store_path), run_id)
    except (ProvenanceError, KeyError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # the store's own errors (unknown run) carry a clear message
        if type(exc).__name__.endswith("NotFoundError"):
            raise click.ClickException(str(exc)) from None
        raise
    click.echo(json.dumps(info, indent=2, default=str) if as_json else format_provenance(info))

"""``agi setup`` and ``agi provenance``: the AiiDA side of agi-data."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import click

from .options import AgiCLIError, store_option


@click.command("setup")
@click.option("--quiet", "-q", is_flag=True, help="Print only errors and the one-line summary.")
@click.option("--profile", default=None, help="AiiDA profile name (default: agi, or $AGI_AIIDA_PROFILE).")
@click.option("--aiida-path", type=click.Path(file_okay=False), default=None,
              help="Where the AiiDA configuration lives (default: $AIIDA_PATH, else <data root>/aiida).")
@click.option("--pseudos", type=click.Choice(["shipped", "ld1"]), default="shipped", show_default=True,
              help="Install the shipped UPF files, or regenerate them with ld1.x first.")
@click.option("--computer", "computer_label", default=None,
              help="Also register a computer of this machine with every agi code on it (e.g. local-slurm).")
@click.option("--scheduler", type=click.Choice(["core.slurm", "core.direct"]), default="core.slurm",
              show_default=True, help="The scheduler of --computer (core.slurm: scripts/slurm-cluster.sh).")
def setup_cmd(quiet: bool, profile: str | None, aiida_path: str | None, pseudos: str, computer_label: str | None,
              scheduler: str) -> None:
    """Create (or check) the AiiDA profile, localhost computer, codes and pseudopotential family. Idempotent."""
    from agi_data.aiida.computers import setup_computer
    from agi_data.aiida.setup import SetupError, setup

    t0 = time.perf_counter()
    try:
        report = setup(profile=profile, aiida_path=aiida_path, pseudos=pseudos, quiet=quiet)
        extra = setup_computer(computer_label, scheduler) if computer_label else {}
    except SetupError as exc:
        raise AgiCLIError(str(exc)) from None
    for full in extra.values():
        click.echo(f"code            {full}")
    dt = time.perf_counter() - t0
    if quiet:
        click.echo(f"agi setup: AiiDA profile '{report.profile}' ready ({dt:.1f} s); "
                   f"use verdi with AIIDA_PATH={report.aiida_path}")
        return
    click.echo(f"AiiDA profile   {report.profile} (core.sqlite_dos + core.zeromq broker)")
    click.echo(f"configuration   {report.aiida_path}")
    click.echo(f"computer        {report.computer}")
    for full in report.codes.values():
        click.echo(f"code            {full}")
    click.echo(f"pseudo family   {report.family}")
    click.echo(f"ready in {dt:.1f} s. To use verdi on this profile:\n"
               f"  export AIIDA_PATH={report.aiida_path}\n"
               f"  verdi daemon start && verdi process list -a")


def _load_profile(name: str | None):
    """The AiiDA profile to read nodes from; a clear error (never a new, empty profile) when it is missing."""
    from aiida.common.exceptions import AiidaException
    from aiida.manage import get_manager

    from agi_data.aiida.setup import PROFILE_NAME, SetupError, configure_aiida_path, load_agi_profile

    loaded = get_manager().get_profile()
    wanted = name or (loaded.name if loaded is not None else PROFILE_NAME)
    try:
        if loaded is None or wanted != loaded.name:
            from aiida.manage.configuration import get_config, settings

            from agi_data.config import aiida_path

            directory = aiida_path()
            config_dir = directory if directory.name == settings.DEFAULT_CONFIG_DIR_NAME else \
                directory / settings.DEFAULT_CONFIG_DIR_NAME
            known = []
            if (config_dir / settings.DEFAULT_CONFIG_FILE_NAME).is_file():
                configure_aiida_path(directory)
                known = get_config().profile_names
            if wanted not in known:
                raise AgiCLIError(
                    f"no AiiDA profile {wanted!r} under {directory} (profiles there: {', '.join(known) or 'none'}); "
                    "set AIIDA_PATH to the configuration that made the run, or run `agi setup`")
        return load_agi_profile(name)
    except (SetupError, AiidaException) as exc:
        raise AgiCLIError(f"cannot load AiiDA profile {wanted!r}: {exc}") from None


def _default_page_path(run_id: str) -> Path:
    """``<reports>/provenance-<run>-<YYYYmmdd-HHMMSS>.html`` (:func:`agi_data.config.reports_path`)."""
    from agi_data.config import reports_path

    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id)
    return reports_path() / f"provenance-{safe}-{time.strftime('%Y%m%d-%H%M%S')}.html"


@click.command("provenance")
@click.argument("run_id", required=False)
@store_option
@click.option("--profile", default=None, help="AiiDA profile holding the nodes (default: the project's).")
@click.option("--json", "as_json", is_flag=True, help="Print the chain as JSON.")
@click.option("--html", "as_html", is_flag=True,
              help="Write the clickable provenance page (self-contained HTML) and print its path.")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False), default=None,
              help="With --html: where to write the page (default: <data root>/reports/provenance-RUN-<time>.html).")
def provenance_cmd(run_id: str | None, store_path: str | None, profile: str | None, as_json: bool,
                   as_html: bool, output: str | None) -> None:
    """Print how RUN_ID was made: the AiiDA nodes, codes, pseudopotentials (md5) and versions.

    With --html, write it as a page instead: the AiiDA graph around the run's nodes and the run
    itself; click a node for its attributes, inputs and outputs.
    """
    from agi_data import open_store
    from agi_data.aiida.provenance import ProvenanceError, format_provenance, run_provenance, write_run_page
    from agi_data.store import StoreError

    if run_id is None:
        raise click.UsageError("missing RUN_ID (see `agi store ls` for the runs)")
    if as_json and as_html:
        raise click.UsageError("--json and --html are exclusive")
    if output is not None and not as_html:
        raise click.UsageError("--output needs --html")
    html_path = (output or "") if as_html else None
    _load_profile(profile)
    try:
        store = open_store(store_path)
        info = run_provenance(store, run_id)
        if html_path is not None:
            out = Path(html_path) if html_path else _default_page_path(run_id)
            page = write_run_page(store, run_id, out, info=info)
    except (ProvenanceError, StoreError, KeyError, FileNotFoundError) as exc:  # unknown run, no provenance, …
        raise AgiCLIError(str(exc)) from None
    if html_path is not None:
        for src in info["sources"]:
            if src["missing"]:
                click.echo(f"warning: node {src['uuid']} ({src['kind']}) is not in the loaded AiiDA profile; "
                           "left out of the page", err=True)
        click.echo(str(page))
    else:
        click.echo(json.dumps(info, indent=2, default=str) if as_json else format_provenance(info))

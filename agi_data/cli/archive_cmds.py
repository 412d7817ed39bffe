"""``agi archive`` and ``agi unarchive``: share store runs with their AiiDA provenance as one bundle file.

See :mod:`agi_data.aiida.archive` for what a bundle holds and docs/sharing.md for how to use it.
"""

from __future__ import annotations

from pathlib import Path

import click

from .aiida_cmds import _load_profile
from .options import AgiCLIError, fail_cleanly, store_option

profile_option = click.option("--profile", default=None,
                              help="AiiDA profile (default: the project's, see `agi setup`).")


def _size(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"


@click.command("archive")
@click.argument("run_ids", nargs=-1, required=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The bundle file to write (e.g. result.agi.tar); never overwritten.")
@store_option
@profile_option
@fail_cleanly()
def archive_cmd(run_ids, output, store_path, profile) -> None:
    """Write RUN_IDS, the runs upstream of them and their AiiDA provenance into one bundle file."""
    from agi_data import open_store
    from agi_data.aiida.archive import create_bundle

    _load_profile(profile)
    store = open_store(store_path, create=False)
    manifest = create_bundle(store, list(run_ids), output)
    for info in manifest["runs"].values():
        if info["warning"]:
            click.echo(f"warning: {info['warning']}", err=True)
    out = Path(output).expanduser().resolve()
    click.echo(f"bundle {out} ({_size(out)}, format {manifest['format_version']})")
    for run_id, info in manifest["runs"].items():
        why = "asked for" if info["requested"] else "upstream"
        click.echo(f"run {run_id} ({why}): version {info['version']}, {len(info['versions'])} versions, "
                   f"pinned {', '.join(info['pinned']) or 'none'}")
    click.echo(f"AiiDA archive: {len(manifest['aiida']['processes'])} processes with their inputs and outputs")


@click.command("unarchive")
@click.argument("bundle", type=click.Path(dir_okay=False))
@store_option
@profile_option
@fail_cleanly()
def unarchive_cmd(bundle, store_path, profile) -> None:
    """Restore a bundle: its AiiDA nodes into the profile, its runs into the store (--store, or the default).

    Nothing is written when the bundle is damaged, of a newer format, or the store holds a run of
    the same id with another history. Afterwards `agi provenance RUN --store <the same store>` works.
    """
    from agi_data.aiida.archive import read_manifest, restore_bundle

    read_manifest(bundle)  # the format is checked before a profile is loaded
    loaded = _load_profile(profile)
    try:
        result = restore_bundle(bundle, store_path)
    except OSError as err:
        raise AgiCLIError(f"restoring {bundle} failed: {err}") from None
    root = result["store"].root
    for run_id in result["present"]:
        click.echo(f"run {run_id}: already in {root} with the same history; left as it is")
    for run_id in result["copied"]:
        info = result["manifest"]["runs"][run_id]
        click.echo(f"run {run_id}: copied to {root} at version {info['version']} "
                   f"({len(info['versions'])} versions)")
    n = len(result["manifest"]["aiida"]["processes"])
    click.echo(f"AiiDA: {n} processes imported into profile {loaded.name!r} (nodes already there kept)")
    click.echo(f"see: agi provenance RUN --store {root} --profile {loaded.name}")

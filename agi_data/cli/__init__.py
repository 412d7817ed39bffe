"""The ``agi`` command line.

Each command group lives in its own module and is registered here:
``store`` (the Zarr store), ``setup`` and ``provenance`` (AiiDA), ``submit``
(launch a WorkChain), ``md``, ``demo``, ``analyse`` (the report for any run),
``archive`` and ``unarchive`` (share runs with their provenance).
"""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="agi-data")
def main() -> None:
    """agi-data: provenance-tracked store and analysis for ML molecular dynamics of AgI."""


def _register() -> None:
    from .aiida_cmds import provenance_cmd, setup_cmd
    from .analyse_cmds import analyse_cmd
    from .archive_cmds import archive_cmd, unarchive_cmd
    from .demo_cmds import demo_cmd
    from .md_cmds import md
    from .store_cmds import store
    from .submit_cmds import submit

    for command in (store, setup_cmd, provenance_cmd, demo_cmd, md, submit, analyse_cmd, archive_cmd,
                    unarchive_cmd):
        main.add_command(command)


_register()

"""The ``agi`` command line.

Each command group lives in its own module and is registered here:
``store`` (the Zarr store), ``setup`` and ``provenance`` (AiiDA), ``md``,
``demo``.
"""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="agi-data")
def main() -> None:
    """agi-data: provenance-tracked store and analysis for ML molecular dynamics of AgI."""


def _register() -> None:
    from .store_cmds import store

    main.add_command(store)
    # further command groups are registered below, one line each
    from .aiida_cmds import provenance_cmd, setup_cmd; main.add_command(setup_cmd); main.add_command(provenance_cmd)  # noqa: E702
    from .demo_cmds import demo_cmd; main.add_command(demo_cmd)  # noqa: E702
    from .md_cmds import md; main.add_command(md)  # noqa: E702


_register()

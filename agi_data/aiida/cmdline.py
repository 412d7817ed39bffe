"""``verdi data agi.reference_set`` and ``verdi data agi.wannier_set``: list, show, export.

Registered through aiida-core's ``aiida.cmdline.data`` entry points, so
``verdi data`` lists them beside its own types::

    verdi data agi.reference_set list [-G GROUP] [-p DAYS] [-A] [-r]
    verdi data agi.reference_set show PK            # summary; --arrays prints the arrays
    verdi data agi.reference_set export PK -F extxyz [-o ref.extxyz]
    verdi data agi.wannier_set export PK -F extxyz -o centres.extxyz

``export`` goes through :meth:`aiida.orm.Data.export` and the ``_prepare_<format>``
methods of :mod:`agi_data.aiida.data`; without ``-o`` it prints the file.
"""

from __future__ import annotations

import click
from aiida.cmdline.commands.cmd_data import verdi_data
from aiida.cmdline.commands.cmd_data.cmd_export import data_export
from aiida.cmdline.commands.cmd_data.cmd_list import list_options, query
from aiida.cmdline.params import arguments, options, types
from aiida.cmdline.utils import decorators, echo

REFERENCE = "agi.reference_set"
WANNIER = "agi.wannier_set"


def _columns(node) -> list:
    """One row of ``list``: pk, label, structures/frames, atoms or centres, formulas or run."""
    from .data import ReferenceDataset

    if isinstance(node, ReferenceDataset):
        return [node.pk, node.label, len(node), int(node.n_atoms.sum()),
                ",".join(node.base.attributes.get("formulas", [])), "yes" if node.has_stress else "no"]
    n_frames = len(node)
    n_centres = node.get_shape("centres")[1] if n_frames else 0
    return [node.pk, node.label, n_frames, n_centres, node.base.attributes.get("run_id", ""),
            len(node.base.attributes.get("failures", {}) or {})]


HEADERS = {
    REFERENCE: ["Id", "Label", "Structures", "Atoms", "Formulas", "Stress"],
    WANNIER: ["Id", "Label", "Frames", "Centres/frame", "Run", "Failures"],
}


def _list(entry_point: str, raw: bool, past_days, groups, all_users) -> None:
    from aiida.orm import load_node
    from aiida.plugins import DataFactory
    from tabulate import tabulate

    cls = DataFactory(entry_point)
    pks = [row[0] for row in query(cls, ["id"], past_days, [g.pk for g in groups] if groups else None, all_users)]
    rows = [_columns(load_node(pk)) for pk in pks]
    if raw:
        echo.echo(tabulate(rows, tablefmt="plain"))
    else:
        echo.echo(tabulate(rows, headers=HEADERS[entry_point]))
        echo.echo(f"\nTotal results: {len(rows)}\n")


def _show(node, with_arrays: bool) -> None:
    from aiida.cmdline.utils.echo import echo_dictionary

    info = {"pk": node.pk, "uuid": node.uuid, "type": node.node_type, "label": node.label,
            "attributes": dict(node.base.attributes.all)}
    info["arrays"] = {name: list(node.get_shape(name)) for name in node.get_arraynames()}
    if with_arrays:
        info["values"] = {name: node.get_array(name).tolist() for name in node.get_arraynames()}
    echo_dictionary(info, fmt="json+date", sort_keys=False)


def _export(node, output, fmt, force) -> None:
    data_export(node, output, fmt, other_args={}, overwrite=force)


# ------------------------------------------------------------------------------- agi.reference_set

@verdi_data.group(REFERENCE)
def reference_set():
    """DFT reference sets (energies, forces, stresses) of agi-data."""


@reference_set.command("list")
@list_options
@decorators.with_dbenv()
def reference_set_list(raw, past_days, groups, all_users):
    """List the stored reference sets."""
    _list(REFERENCE, raw, past_days, groups, all_users)


@reference_set.command("show")
@arguments.DATUM(type=types.DataParamType(sub_classes=(f"aiida.data:{REFERENCE}",)))
@click.option("--arrays", "with_arrays", is_flag=True, help="Also print every array's values.")
@decorators.with_dbenv()
def reference_set_show(datum, with_arrays):
    """Summary of a reference set: attributes and array shapes."""
    _show(datum, with_arrays)


@reference_set.command("export")
@arguments.DATUM(type=types.DataParamType(sub_classes=(f"aiida.data:{REFERENCE}",)))
@options.EXPORT_FORMAT(type=click.Choice(["extxyz", "json"]), default="extxyz")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write to this file instead of printing.")
@options.FORCE(help="Overwrite an existing output file.")
@decorators.with_dbenv()
def reference_set_export(datum, fmt, output, force):
    """Export a reference set (extxyz: energies, forces, stresses in ASE units)."""
    _export(datum, output, fmt, force)


# ------------------------------------------------------------------------------- agi.wannier_set

@verdi_data.group(WANNIER)
def wannier_set():
    """Wannier-centre batches of agi-data."""


@wannier_set.command("list")
@list_options
@decorators.with_dbenv()
def wannier_set_list(raw, past_days, groups, all_users):
    """List the stored Wannier-centre batches."""
    _list(WANNIER, raw, past_days, groups, all_users)


@wannier_set.command("show")
@arguments.DATUM(type=types.DataParamType(sub_classes=(f"aiida.data:{WANNIER}",)))
@click.option("--arrays", "with_arrays", is_flag=True, help="Also print every array's values.")
@decorators.with_dbenv()
def wannier_set_show(datum, with_arrays):
    """Summary of a Wannier-centre batch: attributes and array shapes."""
    _show(datum, with_arrays)


@wannier_set.command("export")
@arguments.DATUM(type=types.DataParamType(sub_classes=(f"aiida.data:{WANNIER}",)))
@options.EXPORT_FORMAT(type=click.Choice(["extxyz", "json"]), default="extxyz")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write to this file instead of printing.")
@options.FORCE(help="Overwrite an existing output file.")
@decorators.with_dbenv()
def wannier_set_export(datum, fmt, output, force):
    """Export a Wannier-centre batch (extxyz: pseudo-atoms X at the centres, spreads, owners)."""
    _export(datum, output, fmt, force)

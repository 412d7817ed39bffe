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


def _data_group(entry_point: str, what: str, help_text: str, export_help: str) -> click.Group:
    """``verdi data <entry_point>`` with ``list``, ``show`` and ``export`` for one agi data type."""
    datum = arguments.DATUM(type=types.DataParamType(sub_classes=(f"aiida.data:{entry_point}",)))

    @verdi_data.group(entry_point, help=help_text)
    def group():
        pass

    @group.command("list", help=f"List the stored {what}s.")
    @list_options
    @decorators.with_dbenv()
    def list_(raw, past_days, groups, all_users):
        _list(entry_point, raw, past_days, groups, all_users)

    @group.command("show", help=f"Summary of a {what}: attributes and array shapes.")
    @datum
    @click.option("--arrays", "with_arrays", is_flag=True, help="Also print every array's values.")
    @decorators.with_dbenv()
    def show(datum, with_arrays):
        _show(datum, with_arrays)

    @group.command("export", help=export_help)
    @datum
    @options.EXPORT_FORMAT(type=click.Choice(["extxyz", "json"]), default="extxyz")
    @click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
                  help="Write to this file instead of printing.")
    @options.FORCE(help="Overwrite an existing output file.")
    @decorators.with_dbenv()
    def export(datum, fmt, output, force):
        _export(datum, output, fmt, force)

    return group


reference_set = _data_group(REFERENCE, "reference set", "DFT reference sets (energies, forces, stresses) of agi-data.",
                            "Export a reference set (extxyz: energies, forces, stresses in ASE units).")
wannier_set = _data_group(WANNIER, "Wannier-centre batch", "Wannier-centre batches of agi-data.",
                          "Export a Wannier-centre batch (extxyz: pseudo-atoms X at the centres, spreads, owners).")

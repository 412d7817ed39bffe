"""``agi.wannier90``: a CalcJob for ``wannier90.x`` (Wannier90 3.x).

Two modes, chosen by ``settings['postproc_setup']``:

* ``wannier90.x -pp aiida`` writes ``aiida.nnkp`` (the k-point neighbours and
  band selection that ``pw2wannier90.x`` needs); output ``nnkp_file``.
* ``wannier90.x aiida`` reads ``aiida.mmn``/``aiida.eig`` (and ``aiida.amn``
  unless ``use_bloch_phases``) from the ``parent_folder`` of a
  ``pw2wannier90.x`` run and minimises the spread; outputs ``centres``
  (ArrayData: ``centres`` (n_wann, 3) Å, ``spreads`` (n_wann,) Å²,
  ``owner`` (n_wann,) index of the ion within ``assign_radius`` of each
  centre or −1) and ``output_parameters``.

The cell, atoms and k-points blocks of ``aiida.win`` come from the
``structure`` and ``kpoints`` inputs (Γ only when ``kpoints`` is absent);
every other keyword comes from ``parameters``. Reference: G. Pizzi et al.,
J. Phys.: Condens. Matter 32, 165902 (2020).
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.common import datastructures, exceptions
from aiida.engine import CalcJob

from ..exit_codes import define_exit_codes

SEEDNAME = "aiida"
_BLOCKED = {"unit_cell_cart", "atoms_cart", "atoms_frac", "mp_grid", "kpoints"}
_SETTINGS_KEYS = {"postproc_setup", "expected_centres", "assign_radius", "additional_retrieve_list"}


def _format_value(key: str, value) -> str:
    if isinstance(value, bool):
        return ".true." if value else ".false."
    if key == "exclude_bands" and isinstance(value, (list, tuple)):
        return ", ".join(str(int(v)) for v in value)
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def write_win(parameters: dict, cell: np.ndarray, symbols: list[str], positions: np.ndarray,
              mp_grid=(1, 1, 1), kpoints_frac: np.ndarray | None = None, projections: list[str] | None = None) -> str:
    """The text of a ``.win`` file. Cell rows and positions in Å, k-points in fractional reciprocal coordinates."""
    lines = []
    for key, value in sorted(parameters.items()):
        lines.append(f"{key} = {_format_value(key, value)}")
    if projections:
        lines += ["", "begin projections", *projections, "end projections"]
    lines += ["", "begin unit_cell_cart", "ang"]
    lines += ["  " + " ".join(f"{x:.10f}" for x in row) for row in np.asarray(cell)]
    lines += ["end unit_cell_cart", "", "begin atoms_cart", "ang"]
    lines += [f"{s:<3s} " + " ".join(f"{x:.10f}" for x in p) for s, p in zip(symbols, np.asarray(positions))]
    lines += ["end atoms_cart", "", "mp_grid = " + " ".join(str(int(m)) for m in mp_grid), "", "begin kpoints"]
    kpts = np.zeros((1, 3)) if kpoints_frac is None else np.asarray(kpoints_frac)
    lines += ["  " + " ".join(f"{x:.10f}" for x in k) for k in kpts]
    lines += ["end kpoints", ""]
    return "\n".join(lines)


def _validate_parameters(node, _port):
    params = {k.lower(): v for k, v in node.get_dict().items()}
    clash = sorted(_BLOCKED & set(params))
    if clash:
        return f"parameters must not set {clash}: the CalcJob writes them from `structure` and `kpoints`"
    if "num_wann" not in params:
        return "parameters must set `num_wann` (number of Wannier functions)"
    return None


def _validate_settings(node, _port):
    unknown = sorted(set(node.get_dict()) - _SETTINGS_KEYS)
    if unknown:
        return f"unknown settings {unknown}; allowed: {sorted(_SETTINGS_KEYS)}"
    return None


def _validate_inputs(inputs, _ctx):
    settings = inputs["settings"].get_dict() if "settings" in inputs else {}
    if not settings.get("postproc_setup", False) and "parent_folder" not in inputs:
        return ("the wannier90.x run needs `parent_folder` (a pw2wannier90.x RemoteData with aiida.mmn/.eig); "
                "or set settings['postproc_setup'] = True for the -pp step")
    return None


class Wannier90Calculation(CalcJob):
    """Run ``wannier90.x`` (``-pp`` setup or the spread minimisation) for one structure."""

    _DEFAULT_INPUT_FILE = f"{SEEDNAME}.win"
    _DEFAULT_OUTPUT_FILE = f"{SEEDNAME}.wout"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("structure", valid_type=orm.StructureData, help="the structure (cell and atoms blocks)")
        spec.input("parameters", valid_type=orm.Dict, validator=_validate_parameters,
                   help="wannier90 keywords (num_wann, num_bands, exclude_bands, gamma_only, use_bloch_phases, …)")
        spec.input("kpoints", valid_type=orm.KpointsData, required=False,
                   help="a k-point mesh; Γ only (mp_grid 1 1 1) when absent")
        spec.input("projections", valid_type=orm.List, required=False,
                   help="lines of the projections block, e.g. ['Ag: d', 'I: s;p']")
        spec.input("settings", valid_type=orm.Dict, required=False, validator=_validate_settings,
                   help="postproc_setup (bool: run -pp), expected_centres ({element: n}), "
                        "assign_radius (Å, default 1.2), additional_retrieve_list")
        spec.input("parent_folder", valid_type=orm.RemoteData, required=False,
                   help="the remote folder of a pw2wannier90.x run holding aiida.mmn/.eig(/.amn)")
        spec.inputs.validator = _validate_inputs
        spec.inputs["metadata"]["options"]["parser_name"].default = "agi.wannier90"
        spec.inputs["metadata"]["options"]["input_filename"].default = cls._DEFAULT_INPUT_FILE
        spec.inputs["metadata"]["options"]["output_filename"].default = cls._DEFAULT_OUTPUT_FILE
        spec.inputs["metadata"]["options"]["resources"].default = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
        spec.inputs["metadata"]["options"]["withmpi"].default = False

        spec.output("output_parameters", valid_type=orm.Dict,
                    help="spreads (Å²), iterations, convergence, centres per ion, code version")
        spec.output("centres", valid_type=orm.ArrayData, required=False,
                    help="arrays centres (n_wann,3) Å, spreads (n_wann,) Å², owner (n_wann,)")
        spec.output("nnkp_file", valid_type=orm.SinglefileData, required=False, help="aiida.nnkp of a -pp run")
        spec.default_output_node = "output_parameters"

        define_exit_codes(spec, "ERROR_NO_RETRIEVED_FOLDER", "ERROR_UNPARSABLE_OUTPUT", "ERROR_WANNIER90_FAILED",
                          "ERROR_WANNIER_NOT_CONVERGED", "ERROR_WRONG_CENTRE_COUNT")

    def prepare_for_submission(self, folder):
        settings = self.inputs.settings.get_dict() if "settings" in self.inputs else {}
        postproc = bool(settings.get("postproc_setup", False))
        params = {k.lower(): v for k, v in self.inputs.parameters.get_dict().items()}
        structure = self.inputs.structure
        ase = structure.get_ase()
        if "kpoints" in self.inputs:
            mesh, _offset = self.inputs.kpoints.get_kpoints_mesh()
            kpts = np.array(self.inputs.kpoints.get_kpoints_mesh(print_list=True))
        else:
            mesh, kpts = (1, 1, 1), None
        projections = list(self.inputs.projections.get_list()) if "projections" in self.inputs else None
        with folder.open(self._DEFAULT_INPUT_FILE, "w") as handle:
            handle.write(write_win(params, ase.cell.array, ase.get_chemical_symbols(), ase.positions,
                                   mesh, kpts, projections))

        calcinfo = datastructures.CalcInfo()
        calcinfo.uuid = str(self.uuid)
        calcinfo.local_copy_list = []
        calcinfo.remote_copy_list = []
        calcinfo.remote_symlink_list = []
        retrieve = [self._DEFAULT_OUTPUT_FILE, f"{SEEDNAME}.werr", f"{SEEDNAME}_centres.xyz"]
        retrieve += list(settings.get("additional_retrieve_list", []))
        if postproc:
            retrieve.append(f"{SEEDNAME}.nnkp")
        else:
            if "parent_folder" not in self.inputs:
                raise exceptions.InputValidationError(
                    "the wannier90.x run needs `parent_folder` (a pw2wannier90.x RemoteData with aiida.mmn/.eig); "
                    "or set settings['postproc_setup'] = True for the -pp step")
            parent = self.inputs.parent_folder
            needed = ["mmn", "eig"]
            if not params.get("use_bloch_phases", False):
                needed.append("amn")
            for ext in needed:
                calcinfo.remote_symlink_list.append(
                    (parent.computer.uuid, f"{parent.get_remote_path()}/{SEEDNAME}.{ext}", f"{SEEDNAME}.{ext}"))
        codeinfo = datastructures.CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = (["-pp"] if postproc else []) + [SEEDNAME]
        calcinfo.codes_info = [codeinfo]
        calcinfo.retrieve_list = retrieve
        return calcinfo

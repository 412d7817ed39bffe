"""What the agi WorkChains share: structures in, pw.x inputs, failure classification, exit codes."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from ..exit_codes import define_exit_codes
from ..setup import MissingPseudoError

#: the exit codes both structure WorkChains (agi.reference, agi.wannier) define
STRUCTURE_EXIT_CODES = ("ERROR_CODE_NOT_FOUND", "ERROR_MISSING_PSEUDO_FAMILY", "ERROR_MISSING_PSEUDO",
                        "ERROR_ODD_ELECTRONS", "ERROR_INVALID_INPUTS", "ERROR_STORE_UNREACHABLE",
                        "ERROR_SCF_NOT_CONVERGED", "ERROR_METALLIC", "ERROR_PW_FAILED", "ERROR_UNPARSABLE_OUTPUT")

#: pw.x parser exit codes that mean "could not read the output"
_PW_UNPARSABLE = {302, 303, 305, 310, 311, 312, 320, 321, 322, 350}


def define_common_exit_codes(spec) -> None:
    define_exit_codes(spec, *STRUCTURE_EXIT_CODES)


def failure(workchain, name: str, pk: int | None = None, **fmt):
    """The exit code ``name`` of ``workchain`` with its message filled in (and the failed node's pk appended)."""
    from aiida.engine import ExitCode

    code = workchain.exit_codes[name].format(**fmt)
    return code if pk is None else ExitCode(code.status, f"{code.message} (pk {pk})")


class WorkflowInputError(ValueError):
    """The arguments given to a builder are inconsistent."""


def exit_code_name(workchain, code) -> str:
    """The name (e.g. ``ERROR_SCF_NOT_CONVERGED``) of one of ``workchain``'s exit codes."""
    for name, value in workchain.exit_codes.items():
        if value.status == code.status:
            return name
    return str(code.status)


def record_failure(workchain, key: str, code, pk: int | None) -> None:
    """Report a failed structure/frame and keep it in ``ctx.failures`` (the first one in ``ctx.first_failure``)."""
    workchain.report(f"left out {key}: [{code.status}] {code.message}")
    workchain.ctx.failures[key] = {"exit_status": code.status, "exit_code": exit_code_name(workchain, code),
                                   "message": code.message, "pk": pk}
    if workchain.ctx.first_failure is None:
        workchain.ctx.first_failure = key


def first_failure_exit(workchain):
    """When nothing succeeded: the first failure's own exit code (e.g. ERROR_SCF_NOT_CONVERGED), with its message."""
    from aiida.engine import ExitCode

    info = workchain.ctx.failures[workchain.ctx.first_failure]
    return ExitCode(info["exit_status"], f"every structure failed; first ({workchain.ctx.first_failure}): "
                                         f"{info['message']}")


def validate_structure_source(inputs, _ctx):
    """`run` needs `frames`; `structures` and `run` exclude each other."""
    if "run" in inputs and "frames" not in inputs:
        return "`run` given without `frames` (the frame indices to take)"
    if "frames" in inputs and "run" not in inputs:
        return "`frames` given without `run` (the store run they index)"
    if inputs.get("structures") and "run" in inputs:
        return "give either `structures` or `run` + `frames`, not both"
    return None


def define_structure_inputs(spec, protocol_file: str) -> None:
    """The inputs both WorkChains share: pseudo family, resolved protocol, and where structures come from."""
    spec.input("pseudo_family", valid_type=orm.Str, help="label of an aiida-pseudo family with Ag and I")
    spec.input("parameters", valid_type=orm.Dict, help=f"the resolved protocol (see agi_data/protocols/{protocol_file}.yaml)")
    spec.input_namespace("structures", valid_type=orm.StructureData, dynamic=True, required=False,
                         help="explicit structures (labels from the keys)")
    spec.input("run", valid_type=orm.Dict, required=False,
               help="store run {store_path, run_id, version}: the frames come from it")
    spec.input("frames", valid_type=orm.List, required=False, help="frame indices of `run`")
    spec.inputs.validator = validate_structure_source


def source_structures(workchain, fallback=None):
    """``(structures, label_of)`` from ``run`` + ``frames`` or the ``structures`` namespace, else ``fallback()``.

    ``label_of(key, structure)`` names a structure in reports (``run_id:frame`` for store frames).
    Returns ``(None, None)`` when there is no source.
    """
    inputs = workchain.inputs
    if "run" in inputs:
        run_id = inputs.run["run_id"]
        return frames_to_structures(inputs.run, inputs.frames), lambda key, _s: f"{run_id}:{key.rsplit('_', 1)[-1]}"
    if inputs.get("structures"):
        return dict(inputs.structures), lambda key, _s: key
    return fallback() if fallback else (None, None)


def prepare_structures(workchain, structures: dict, label_of) -> object | None:
    """Check family, pseudopotentials and electron counts of ``structures``; fill the context.

    Sets ``ctx.family``, ``ctx.structures``, ``ctx.meta`` ({key: label, n_occ, cell}),
    ``ctx.pending`` (keys in order), ``ctx.failures``, ``ctx.first_failure`` and ``ctx.shared``.
    Returns an exit code (missing family or pseudopotential, odd electron count) or None.
    """
    ctx = workchain.ctx
    try:
        family = load_family(workchain.inputs.pseudo_family.value)
    except ValueError:
        return workchain.exit_codes.ERROR_MISSING_PSEUDO_FAMILY.format(family=workchain.inputs.pseudo_family.value)
    ctx.structures, ctx.meta, ctx.pending = {}, {}, []
    for key in sorted(structures, key=lambda k: (len(k), k)):
        s = structures[key]
        missing = missing_elements(family, s)
        if missing:
            return workchain.exit_codes.ERROR_MISSING_PSEUDO.format(family=family.label, elements=missing)
        n_el = n_electrons(s, family.get_pseudos(structure=s))
        label = label_of(key, s)
        if round(n_el) % 2:
            return workchain.exit_codes.ERROR_ODD_ELECTRONS.format(label=label, n_electrons=n_el)
        ctx.structures[key] = s
        ctx.meta[key] = {"label": label, "n_occ": int(round(n_el)) // 2,
                         "cell": [round(float(x), 6) for x in np.ravel(s.cell)]}
        ctx.pending.append(key)
    ctx.family = family
    ctx.failures, ctx.first_failure, ctx.shared = {}, None, {}
    return None


def check_code(workchain, code):
    """The ERROR_CODE_NOT_FOUND exit code if ``code`` is an InstalledCode whose executable is gone, else None."""
    if isinstance(code, orm.InstalledCode):
        try:
            code.validate_filepath_executable()
        except Exception:  # noqa: BLE001 - aiida raises ValidationError with the reason
            return workchain.exit_codes.ERROR_CODE_NOT_FOUND.format(
                code=code.full_label, computer=code.computer.label, path=code.filepath_executable)
    return None


def load_family(label: str):
    """The aiida-pseudo family ``label`` or :class:`MissingPseudoError`."""
    from aiida.orm import QueryBuilder
    from aiida_pseudo.groups.family import PseudoPotentialFamily

    family = QueryBuilder().append(PseudoPotentialFamily, filters={"label": label}).first(flat=True)
    if family is None:
        raise MissingPseudoError(f"no pseudopotential family {label!r}")
    return family


def missing_elements(family, structure: orm.StructureData) -> list[str]:
    have = set(family.elements)
    return sorted({k.symbol for k in structure.kinds} - have)


def n_electrons(structure: orm.StructureData, pseudos: dict) -> float:
    """Valence electrons of a structure with the given ``{kind: UpfData}``."""
    counts = {}
    for site in structure.sites:
        counts[site.kind_name] = counts.get(site.kind_name, 0) + 1
    return float(sum(n * pseudos[k].z_valence for k, n in counts.items()))


def shared_node(cache: dict | None, key: str, make):
    """A stored input node shared by every structure that needs the same one (fewer nodes per frame)."""
    if cache is None:
        return make()
    if key not in cache:
        cache[key] = make().store()
    return cache[key]


def pw_inputs(structure, pseudos, code, params: dict, *, label: str, cache: dict | None = None) -> dict:
    """Inputs of a ``quantumespresso.pw`` SCF from a protocol (``params`` = the resolved protocol).

    With ``cache`` (a dict kept in the WorkChain's context) the parameters, k-points and
    settings nodes are created once and shared by every structure with the same size.
    """
    from ..calculations.wannier_chain import pw_namelists

    pw = params["pw"]
    nat = len(structure.sites)
    n_occ = int(round(n_electrons(structure, pseudos))) // 2
    gamma = pw["kpoints"] == "gamma"

    def make_kpoints():
        kpoints = orm.KpointsData()
        kpoints.set_kpoints_mesh([1, 1, 1] if gamma else [int(k) for k in pw["kpoints"]])
        return kpoints
    inputs = {
        "code": code,
        "structure": structure,
        "pseudos": pseudos,
        "kpoints": shared_node(cache, "pw_kpoints", make_kpoints),
        "parameters": shared_node(cache, f"pw_parameters_{nat}_{n_occ}",
                                  lambda: orm.Dict(pw_namelists(params, nat, n_occ))),
        "metadata": {"label": label, "options": calcjob_options(params)},
    }
    if gamma:
        inputs["settings"] = shared_node(cache, "pw_settings", lambda: orm.Dict({"gamma_only": True}))
    return inputs


def calcjob_options(params: dict, *, wallclock_factor: int = 1, serial: bool = False,
                    per_code_mpi: bool = False) -> dict:
    """``metadata.options`` of a CalcJob from a resolved protocol's ``options`` (scheduler options).

    ``withmpi`` follows the resources (more than one rank); ``serial`` runs one rank without MPI
    (wannier90.x at Γ); ``wallclock_factor`` scales the wall time (a batch of frames);
    ``per_code_mpi`` leaves ``withmpi`` to the CalcJob, which sets it code by code (the batch job runs
    pw.x under MPI and wannier90.x without: one job-wide value would contradict one of them).
    """
    import copy

    options = copy.deepcopy(dict(params["options"]))
    if serial:
        options["resources"] = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
    resources = options.get("resources", {})
    nprocs = int(resources.get("num_machines", 1)) * int(resources.get("num_mpiprocs_per_machine", 1))
    if per_code_mpi:
        options.pop("withmpi", None)
    else:
        options["withmpi"] = nprocs > 1
    if "max_wallclock_seconds" in options:
        options["max_wallclock_seconds"] = int(options["max_wallclock_seconds"]) * int(wallclock_factor)
    return options


def homo_lumo_gap(calc, n_occ: int) -> float | None:
    """Γ HOMO-LUMO gap (eV) from a finished pw.x calculation's bands, None without empty bands."""
    if "output_band" not in calc.outputs:
        return None
    bands = np.asarray(calc.outputs.output_band.get_bands())
    bands = bands.reshape(-1, bands.shape[-1])  # (n_k, n_bands) for spin-unpolarised runs
    if bands.shape[-1] <= n_occ:
        return None
    return float(bands[:, n_occ].min() - bands[:, n_occ - 1].max())


def classify_pw(workchain, calc, *, label: str, n_occ: int, min_gap) -> tuple[object | None, float | None]:
    """(exit code or None, gap in eV) for a finished pw.x CalcJob: not converged, metallic, unparsable, failed."""
    status = calc.exit_status
    if status == 410 or (status is not None and status != 0 and "CONVERGENCE" in str(calc.exit_message).upper()):
        return failure(workchain, "ERROR_SCF_NOT_CONVERGED", calc.pk, label=label), None
    if status in _PW_UNPARSABLE:
        return failure(workchain, "ERROR_UNPARSABLE_OUTPUT", calc.pk, label=label,
                       message=f"pw.x parser: {calc.exit_message}"), None
    if not calc.is_finished_ok:
        return failure(workchain, "ERROR_PW_FAILED", calc.pk, label=label,
                       message=f"exit {status} {calc.exit_message or calc.process_state}"), None
    gap = homo_lumo_gap(calc, n_occ)
    if min_gap is not None and gap is not None and gap < float(min_gap):
        return failure(workchain, "ERROR_METALLIC", calc.pk, label=label, gap=gap, min_gap=min_gap), gap
    return None, gap


# ---------------------------------------------------------------- structures in
@calcfunction
def frames_to_structures(run: orm.Dict, frames: orm.List) -> dict:
    """StructureData of the given frames of a store run (at the version pinned in ``run``)."""
    from ase import Atoms

    from agi_data.analysis._schema import cell_per_frame
    from agi_data.store import open_store

    info = run.get_dict()
    ds = open_store(info["store_path"]).trajectory(info["run_id"], version=info.get("version"))
    idx = [int(f) for f in frames.get_list()]
    n_time = ds.sizes["time"]
    bad = [f for f in idx if not 0 <= f < n_time]
    if bad:
        raise ValueError(f"frames {bad} are outside run {info['run_id']!r} (0..{n_time - 1})")
    pos = np.asarray(ds["positions"].isel(time=idx).values, dtype=float)
    cells = np.asarray(cell_per_frame(ds).isel(time=idx).values, dtype=float)
    numbers = np.asarray(ds["species"].values)
    out = {}
    for k, f in enumerate(idx):
        atoms = Atoms(numbers=numbers, positions=pos[k], cell=cells[k], pbc=True)
        out[f"frame_{f}"] = orm.StructureData(ase=atoms)
    return out


@calcfunction
def perturbed_cells(parameters: orm.Dict) -> dict:
    """``n_structures`` α-AgI supercells with Ag on random tetrahedral sites and Gaussian rattle (seeded)."""
    from agi_data.structures import alpha_agi

    p = parameters.get_dict()
    out = {}
    for i in range(int(p["n_structures"])):
        atoms = alpha_agi(int(p["supercell"]), float(p["lattice"]), seed=int(p["seed"]) + 2 * i,
                          rattle=float(p["rattle"]))
        out[f"structure_{i}"] = orm.StructureData(ase=atoms)
    return out


# ---------------------------------------------------------------- results groups
def results_group_label(kind: str, run: str) -> str:
    """``agi/<kind>/<run>``: the Group of a WorkChain's results (``kind``: reference, wannier, train, md)."""
    return f"agi/{kind}/{run}"


def add_to_results_group(workchain, kind: str, run: str | None, nodes) -> str:
    """Put the WorkChain and its result ``nodes`` in the Group ``agi/<kind>/<run>`` (made when missing).

    ``run``: the store run the results belong to; without one, ``pk<N>`` of the WorkChain. Returns the label.
    """
    label = results_group_label(kind, run or f"pk{workchain.node.pk}")
    group, _ = orm.Group.collection.get_or_create(label=label)
    if not group.description:
        group.description = f"results of agi.{kind} WorkChains" + (f" for store run {run}" if run else "")
    group.add_nodes([workchain.node, *[n for n in nodes if n.is_stored]])
    workchain.report(f"results in group {label!r}")
    return label

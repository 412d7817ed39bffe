"""The input files of the per-frame Wannier chain ``pw.x → wannier90.x -pp → pw2wannier90.x → wannier90.x``.

One set of functions turns a resolved ``wannier`` protocol (``agi_data/protocols/wannier.yaml``) into
the pw.x namelists, the wannier90 keywords and the pw2wannier90 namelist. They serve every
place that runs the chain: the ``quantumespresso.pw`` inputs of the step-by-step WorkChain,
the ``agi.wannier_batch`` CalcJob, and the plain shell script the overhead benchmark
compares against, so all three run the same physics.

A frame's SCF may be run again (``pw.scf_restarts`` times at most): :func:`retry_schedule` gives the
``mixing_beta`` and ``electron_maxstep`` of each restart (the protocol's ``pw.scf_restart``), the
same in both routes, and :func:`chain_input_files` writes the restart inputs of the batched route.

Units: cutoffs Ry, ``conv_thr`` Ry (the protocol gives it per atom), cell and positions Å.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: pw.x ``prefix``/``outdir`` of the chain; one frame's wavefunctions at a time (the next pw.x overwrites them)
QE_PREFIX = "aiida"
QE_OUTDIR = "./out/"


def occupied_bands(symbols, z_valence: dict[str, float]) -> int:
    """Doubly occupied bands of an insulator: half the valence electrons (fixed occupations)."""
    return int(round(sum(float(z_valence[s]) for s in symbols))) // 2


def pw_namelists(params: dict, nat: int, n_occ: int) -> dict[str, dict]:
    """CONTROL, SYSTEM and ELECTRONS of the SCF that a ``wannier`` or ``reference`` protocol asks for."""
    pw = params["pw"]
    return {
        "CONTROL": {"calculation": "scf", "tprnfor": bool(pw["forces"]), "tstress": bool(pw["stress"])},
        "SYSTEM": {"ecutwfc": float(pw["ecutwfc"]), "ecutrho": float(pw["ecutrho"]), "occupations": "fixed",
                   "nbnd": n_occ + int(pw["n_empty_bands"])},
        "ELECTRONS": {"conv_thr": float(pw["conv_thr_per_atom"]) * nat, "mixing_beta": float(pw["mixing_beta"]),
                      "electron_maxstep": int(pw["electron_maxstep"])},
    }


#: why a frame was refused instead of restarted (the keys of ``recovery_summary``'s ``refused_by_reason``)
REFUSAL_REASONS = {
    "stalled": "the SCF accuracy's trend cannot reach conv_thr within the restarts (no gap, atoms too close, ...)",
    "restarts_used_up": "still not converged after the last restart",
    "metallic": "converged, but the Γ gap is below pw.min_gap_eV",
}


def restart_policy(params: dict) -> dict | None:
    """``pw.scf_restart`` of a resolved protocol (``mixing_beta_factor``, ``electron_maxstep_factor``), or None.

    :raises ValueError: a factor that would not make a restart gentler or longer, or negative restarts.
    """
    policy = params["pw"].get("scf_restart")
    if policy is None:
        return None
    problems = []
    if not 0 < float(policy["mixing_beta_factor"]) <= 1:
        problems.append(f"pw.scf_restart.mixing_beta_factor must lie in (0, 1] (a restart mixes more gently), "
                        f"got {policy['mixing_beta_factor']!r}")
    if not float(policy["electron_maxstep_factor"]) >= 1:
        problems.append(f"pw.scf_restart.electron_maxstep_factor must be ≥ 1 (a restart gets at least the steps of "
                        f"the attempt before), got {policy['electron_maxstep_factor']!r}")
    if not int(params["pw"].get("scf_restarts", 0)) >= 0:
        problems.append(f"pw.scf_restarts must be ≥ 0 (0: no restart), got {params['pw']['scf_restarts']!r}")
    if problems:
        raise ValueError("; ".join(problems))
    return {"mixing_beta_factor": float(policy["mixing_beta_factor"]),
            "electron_maxstep_factor": float(policy["electron_maxstep_factor"]),
            "refuse_stalled": bool(policy.get("refuse_stalled", True))}


def retry_schedule(mixing_beta: float, electron_maxstep: int, policy: dict, n_restarts: int) -> list[tuple[float, int]]:
    r"""``[(mixing_beta, electron_maxstep)]`` of restarts 1…``n_restarts`` after an attempt run with the given values.

    Restart :math:`k`: :math:`\beta_k = \beta_0 f_\beta^k`, :math:`N_k = \lceil N_0 f_N^k \rceil`
    (``mixing_beta_factor`` :math:`f_\beta`, ``electron_maxstep_factor`` :math:`f_N`).
    """
    import math

    return [(round(mixing_beta * policy["mixing_beta_factor"] ** k, 6),
             int(math.ceil(round(electron_maxstep * policy["electron_maxstep_factor"] ** k, 6))))
            for k in range(1, n_restarts + 1)]



def pw_restart_inputs(params: dict) -> list[tuple[float, int]]:
    """``[(mixing_beta, electron_maxstep)]`` of the restarts a protocol allows (empty without ``pw.scf_restart``)."""
    policy = restart_policy(params)
    if policy is None:
        return []
    pw = params["pw"]
    return retry_schedule(float(pw["mixing_beta"]), int(pw["electron_maxstep"]), policy, int(pw["scf_restarts"]))


def wannier90_keywords(params: dict, n_occ: int) -> dict:
    """The ``.win`` keywords: one Wannier function per occupied band, empty bands excluded, Γ only."""
    w90 = params["wannier90"]
    n_empty = int(params["pw"]["n_empty_bands"])
    out = {"num_wann": n_occ, "num_bands": n_occ, "write_xyz": True, "translate_home_cell": True,
           "num_iter": int(w90["num_iter"]), "conv_tol": float(w90["conv_tol"]),
           "conv_window": int(w90["conv_window"]), "use_bloch_phases": bool(w90["use_bloch_phases"])}
    if params["pw"]["kpoints"] == "gamma":
        out["gamma_only"] = True
    if n_empty > 0:
        out["exclude_bands"] = f"{n_occ + 1}-{n_occ + n_empty}" if n_empty > 1 else str(n_occ + 1)
    return out


def pw2wannier90_namelist(params: dict, seedname: str) -> dict:
    """INPUTPP of pw2wannier90.x: overlaps (and projections unless Bloch phases are the initial guess)."""
    bloch = bool(params["wannier90"]["use_bloch_phases"])
    return {"outdir": QE_OUTDIR, "prefix": QE_PREFIX, "seedname": seedname, "write_amn": not bloch,
            "write_mmn": True, "write_unk": False}


def namelist(name: str, values: dict) -> str:
    """A Fortran namelist block."""
    def fmt(v):
        if isinstance(v, bool):
            return ".true." if v else ".false."
        if isinstance(v, str):
            return f"'{v}'"
        return repr(v)
    return f"&{name}\n" + "".join(f"  {k} = {fmt(v)}\n" for k, v in values.items()) + "/\n"


def chain_input_files(symbols: list[str], cell, positions, params: dict, pseudo_files: dict[str, str],
                      z_valence: dict[str, float], seedname: str, *,
                      restarts: bool = False) -> tuple[int, dict[str, str]]:
    """``(n_occ, {file name: text})`` of one frame's chain: ``<seed>.pw.in``, ``<seed>.win``, ``<seed>.p2w.in``.

    ``pseudo_files`` maps element → UPF file name (in the working directory, ``pseudo_dir = ./``).
    With ``restarts``, also ``<seed>.pw.<k>.in`` for attempts k = 2 … ``pw.scf_restarts`` + 1: a full
    restart (``restart_mode = 'restart'``: the charge density and wavefunctions pw.x left in ``./out/``)
    with the ``mixing_beta`` and ``electron_maxstep`` of :func:`pw_restart_inputs`.
    """
    from agi_data.elements import mass

    from .wannier90 import write_win

    if params["pw"]["kpoints"] != "gamma":
        raise ValueError("the Wannier chain runs at Γ only (pw.kpoints: gamma)")
    cell, positions = np.asarray(cell, dtype=float), np.asarray(positions, dtype=float)
    n_occ = occupied_bands(symbols, z_valence)
    species = sorted(set(symbols))
    blocks = pw_namelists(params, len(symbols), n_occ)
    control = {**blocks["CONTROL"], "prefix": QE_PREFIX, "outdir": QE_OUTDIR, "pseudo_dir": "./"}
    system = {"ibrav": 0, "nat": len(symbols), "ntyp": len(species), **blocks["SYSTEM"]}
    text = "ATOMIC_SPECIES\n" + "".join(f"{el} {mass(el)} {pseudo_files[el]}\n" for el in species)
    text += "CELL_PARAMETERS angstrom\n" + "".join(" ".join(f"{x:.10f}" for x in r) + "\n" for r in cell)
    text += "ATOMIC_POSITIONS angstrom\n" + "".join(
        f"{s} " + " ".join(f"{x:.10f}" for x in p) + "\n" for s, p in zip(symbols, positions))
    text += "K_POINTS gamma\n"
    pw_in = {f"{seedname}.pw.in": namelist("control", control) + namelist("system", system)
             + namelist("electrons", blocks["ELECTRONS"]) + text}
    for k, (beta, maxstep) in enumerate(pw_restart_inputs(params) if restarts else [], start=2):
        electrons = {**blocks["ELECTRONS"], "mixing_beta": beta, "electron_maxstep": maxstep}
        pw_in[f"{seedname}.pw.{k}.in"] = (namelist("control", {**control, "restart_mode": "restart"})
                                          + namelist("system", system) + namelist("electrons", electrons) + text)
    files = {
        **pw_in,
        f"{seedname}.win": write_win(wannier90_keywords(params, n_occ), cell, symbols, positions),
        f"{seedname}.p2w.in": namelist("inputpp", pw2wannier90_namelist(params, seedname)),
    }
    return n_occ, files


def chain_command_lines(seedname: str) -> list[tuple[str, list[str], str | None]]:
    """``(code, arguments, stdout file)`` of one frame's four runs, in order (code: pw, wannier90, pw2wannier90)."""
    return [
        ("pw", ["-in", f"{seedname}.pw.in"], f"{seedname}.pw.out"),
        ("wannier90", ["-pp", seedname], None),
        ("pw2wannier90", ["-in", f"{seedname}.p2w.in"], f"{seedname}.p2w.out"),
        ("wannier90", [seedname], None),
    ]


def write_chain(directory: str | Path, atoms, params: dict, pseudo_paths: dict[str, Path], seedname: str) -> int:
    """Write one frame's chain inputs (and copies of the UPF files) into ``directory``; returns ``n_occ``."""
    import shutil

    from agi_data.pseudo import upf_header

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    symbols = atoms.get_chemical_symbols()
    for el in set(symbols):
        shutil.copy(pseudo_paths[el], directory / Path(pseudo_paths[el]).name)
    n_occ, files = chain_input_files(
        symbols, atoms.cell.array, atoms.positions, params, {el: Path(p).name for el, p in pseudo_paths.items()},
        {el: upf_header(p)["z_valence"] for el, p in pseudo_paths.items()}, seedname)
    for name, text in files.items():
        (directory / name).write_text(text)
    return n_occ

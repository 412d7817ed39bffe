"""Helpers for tests and benchmarks: the codes, computer and pseudopotentials on the loaded (test) profile."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import setup as _setup


def prepare_profile(workdir: str | Path, *, mpiprocs: int = 1) -> dict:
    """Computer ``localhost`` (scratch in ``workdir``), the three codes and the pseudo family, on the loaded profile.

    Also switches an SQLite profile to WAL. Idempotent. Returns ``{"computer", "codes", "family"}``.
    """
    _setup.enable_sqlite_wal()
    computer = _setup.ensure_computer(workdir=workdir, mpiprocs=mpiprocs)
    return {"computer": computer, "codes": _setup.ensure_codes(computer), "family": _setup.ensure_pseudo_family()}


def ag_pair_snapshot(distance: float = 1.2, a: float = 5.07):
    """A pathological 4-atom α-AgI snapshot: two Ag ``distance`` Å apart (pw.x SCF does not converge at 1.2 Å)."""
    from ase import Atoms

    ag = np.array([a / 2, a / 4, 0.0])
    return Atoms("I2Ag2", positions=[[0, 0, 0], [a / 2] * 3, ag, ag + [0, distance, 0]], cell=[a] * 3, pbc=True)


def _namelist(name: str, values: dict) -> str:
    def fmt(v):
        if isinstance(v, bool):
            return ".true." if v else ".false."
        if isinstance(v, str):
            return f"'{v}'"
        return repr(v)
    return f"&{name}\n" + "".join(f"  {k} = {fmt(v)}\n" for k, v in values.items()) + "/\n"


def write_plain_inputs(atoms, workdir: str | Path, params: dict, pseudo_files: dict) -> dict:
    """The pw.x, wannier90.x and pw2wannier90.x inputs that ``agi.wannier`` would use, for a plain shell run.

    ``params`` is a resolved ``wannier`` protocol (:func:`agi_data.aiida.protocols.load_protocol`);
    ``pseudo_files`` maps element → UPF path. Returns the number of occupied bands and the file names.
    """
    import shutil

    from agi_data.pseudo import upf_header

    from .calculations.wannier90 import write_win

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    symbols = atoms.get_chemical_symbols()
    n_el = sum(upf_header(pseudo_files[s])["z_valence"] for s in symbols)
    n_occ = int(round(n_el)) // 2
    pw = params["pw"]
    n_empty = int(pw["n_empty_bands"])
    species = sorted(set(symbols))
    for el in species:
        shutil.copy(pseudo_files[el], workdir / Path(pseudo_files[el]).name)
    text = _namelist("control", {"calculation": "scf", "prefix": "aiida", "outdir": "./out/", "pseudo_dir": "./",
                                 "tprnfor": bool(pw["forces"]), "tstress": bool(pw["stress"])})
    text += _namelist("system", {"ibrav": 0, "nat": len(atoms), "ntyp": len(species), "ecutwfc": float(pw["ecutwfc"]),
                                 "ecutrho": float(pw["ecutrho"]), "occupations": "fixed", "nbnd": n_occ + n_empty})
    text += _namelist("electrons", {"conv_thr": float(pw["conv_thr_per_atom"]) * len(atoms),
                                    "mixing_beta": float(pw["mixing_beta"]),
                                    "electron_maxstep": int(pw["electron_maxstep"])})
    from agi_data.elements import mass

    text += "ATOMIC_SPECIES\n" + "".join(f"{el} {mass(el)} {Path(pseudo_files[el]).name}\n" for el in species)
    text += "CELL_PARAMETERS angstrom\n" + "".join(" ".join(f"{x:.10f}" for x in r) + "\n" for r in atoms.cell.array)
    text += "ATOMIC_POSITIONS angstrom\n" + "".join(
        f"{s} " + " ".join(f"{x:.10f}" for x in p) + "\n" for s, p in zip(symbols, atoms.positions))
    text += "K_POINTS gamma\n"
    (workdir / "pw.in").write_text(text)
    w90 = params["wannier90"]
    win = {"num_wann": n_occ, "num_bands": n_occ, "write_xyz": True, "translate_home_cell": True,
           "num_iter": int(w90["num_iter"]), "conv_tol": float(w90["conv_tol"]), "conv_window": int(w90["conv_window"]),
           "use_bloch_phases": bool(w90["use_bloch_phases"]), "gamma_only": True}
    if n_empty:
        win["exclude_bands"] = f"{n_occ + 1}-{n_occ + n_empty}" if n_empty > 1 else str(n_occ + 1)
    (workdir / "aiida.win").write_text(write_win(win, atoms.cell.array, symbols, atoms.positions))
    (workdir / "p2w.in").write_text(_namelist("inputpp", {
        "outdir": "./out/", "prefix": "aiida", "seedname": "aiida", "write_amn": not win["use_bloch_phases"],
        "write_mmn": True, "write_unk": False}))
    return {"n_occ": n_occ, "workdir": workdir}


PLAIN_CHAIN = """#!/bin/bash
# The agi.wannier chain for one frame, without AiiDA: pw.x -> wannier90.x -pp -> pw2wannier90.x -> wannier90.x
set -e
cd "$1"
export OMP_NUM_THREADS=1
NP=${2:-1}
run() { if [ "$NP" -gt 1 ]; then mpirun --allow-run-as-root -np "$NP" --bind-to none "$@"; else "$@"; fi; }
run pw.x -in pw.in > pw.out
wannier90.x -pp aiida
run pw2wannier90.x -in p2w.in > p2w.out
wannier90.x aiida
"""


def run_plain_chain(workdir: str | Path, nprocs: int = 1) -> float:
    """Run :data:`PLAIN_CHAIN` in ``workdir`` (inputs from :func:`write_plain_inputs`); returns the wall time, s."""
    import os
    import subprocess
    import time

    script = Path(workdir) / "chain.sh"
    script.write_text(PLAIN_CHAIN)
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    t0 = time.perf_counter()
    subprocess.run(["bash", str(script), str(workdir), str(nprocs)], check=True, env=env, capture_output=True)
    return time.perf_counter() - t0

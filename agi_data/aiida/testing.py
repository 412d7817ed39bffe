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


def write_plain_inputs(atoms, workdir: str | Path, params: dict, pseudo_files: dict, seedname: str = "aiida") -> dict:
    """The inputs ``agi.wannier`` would use for one frame, for a plain shell run (same writer as the CalcJob).

    ``params`` is a resolved ``wannier`` protocol (:func:`agi_data.aiida.protocols.load_protocol`);
    ``pseudo_files`` maps element → UPF path. Returns ``{"n_occ", "workdir", "seedname"}``.
    """
    from .calculations.wannier_chain import write_chain

    n_occ = write_chain(workdir, atoms, params, pseudo_files, seedname)
    return {"n_occ": n_occ, "workdir": Path(workdir), "seedname": seedname}


_EXECUTABLES = {"pw": "pw.x", "pw2wannier90": "pw2wannier90.x", "wannier90": "wannier90.x"}


def plain_chain_script(seedname: str = "aiida") -> str:
    """A bash script running one frame's chain, the same command lines as ``agi.wannier_batch``, without AiiDA.

    Usage: ``bash chain.sh WORKDIR [NPROCS]``; pw.x and pw2wannier90.x run under ``mpirun`` when NPROCS > 1.
    """
    from .calculations.wannier_chain import chain_command_lines

    lines = ["#!/bin/bash", "set -e", 'cd "$1"', "export OMP_NUM_THREADS=1", "NP=${2:-1}",
             'run() { if [ "$NP" -gt 1 ]; then mpirun --allow-run-as-root -np "$NP" --bind-to none "$@"; '
             'else "$@"; fi; }']
    for code, args, stdout in chain_command_lines(seedname):
        prefix = "run " if code != "wannier90" else ""
        lines.append(prefix + " ".join([_EXECUTABLES[code], *args]) + (f" > {stdout}" if stdout else ""))
    return "\n".join(lines) + "\n"


def run_plain_chain(workdir: str | Path, nprocs: int = 1, seedname: str = "aiida") -> float:
    """Run :func:`plain_chain_script` in ``workdir`` (inputs from :func:`write_plain_inputs`); returns the wall time, s."""
    import os
    import subprocess
    import time

    script = Path(workdir) / "chain.sh"
    script.write_text(plain_chain_script(seedname))
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    t0 = time.perf_counter()
    subprocess.run(["bash", str(script), str(workdir), str(nprocs)], check=True, env=env, capture_output=True)
    return time.perf_counter() - t0

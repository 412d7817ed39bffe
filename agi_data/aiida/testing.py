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

r"""Thermodynamic read-outs of an MD segment: kinetic energy, kinetic temperature, NVE energy drift.

Units: velocities Å/ps, masses u, energies eV, time ps, temperature K.

* Kinetic energy :math:`K = \tfrac12\sum_i m_i |v_i|^2`, converted from
  u·Å²/ps² to eV with :data:`agi_data.units.AMU_A2_PS2_IN_EV`.
* Kinetic temperature :math:`T = 2K / (N_\mathrm{dof} k_B)` with
  :math:`N_\mathrm{dof} = 3N - 3` for a run whose total momentum is zero
  (the initial velocities have none and no integrator here adds any).
  Under NVE it differs from the nominal temperature of the initial
  velocities (equipartition with the potential energy takes some of it):
  analyses that need :math:`k_BT` (C(0) = 3k_BT/m, the Einstein friction
  k_BT/(mD)) use this measured value.
* NVE energy drift: the least-squares slope of :math:`(U + K)/N` against
  time, eV/atom/ps — the usual check of the integrator and the time step
  (Frenkel & Smit, *Understanding Molecular Simulation*, 2nd ed., §4.3).
"""

from __future__ import annotations

import numpy as np

from ..units import AMU_A2_PS2_IN_EV, KB_EV_PER_K


def masses_u(symbols) -> np.ndarray:
    """Standard atomic masses (u) of element symbols (ASE's table)."""
    from ase.data import atomic_masses, atomic_numbers

    return np.array([atomic_masses[atomic_numbers[str(s)]] for s in symbols], dtype=np.float64)


def kinetic_energy(velocities: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """K (eV) of each frame: ``velocities`` (..., atom, 3) in Å/ps, ``masses`` (atom,) in u."""
    v = np.asarray(velocities, dtype=np.float64)
    return 0.5 * np.einsum("...ij,i->...", v * v, np.asarray(masses, dtype=np.float64)) * AMU_A2_PS2_IN_EV


def kinetic_temperature(velocities: np.ndarray, masses: np.ndarray, *, remove_com: bool = True) -> float:
    """Mean kinetic temperature (K) over frames: 2⟨K⟩/(N_dof k_B), N_dof = 3N − 3 (``remove_com``) or 3N.

    For a subset of atoms (one species) pass ``remove_com=False``: its atoms
    carry 3 degrees of freedom each.
    """
    v = np.asarray(velocities, dtype=np.float64)
    n = v.shape[-2]
    dof = 3 * n - (3 if remove_com else 0)
    if dof <= 0:
        raise ValueError(f"a kinetic temperature needs degrees of freedom; {n} atom(s) leave {dof}")
    return temperature_from_kinetic(float(kinetic_energy(v, masses).mean()), dof)


def temperature_from_kinetic(kinetic_eV: float, dof: int) -> float:
    """T = 2K/(N_dof k_B) in K, from a kinetic energy in eV and the degrees of freedom."""
    return 2.0 * kinetic_eV / (dof * KB_EV_PER_K)


def energy_drift(time_ps: np.ndarray, total_energy_eV: np.ndarray, n_atoms: int) -> float:
    """Least-squares slope of the total energy per atom against time: eV/atom/ps (NaN for < 2 frames)."""
    t = np.asarray(time_ps, dtype=np.float64)
    e = np.asarray(total_energy_eV, dtype=np.float64) / n_atoms
    if t.size < 2 or np.ptp(t) == 0:
        return float("nan")
    return float(np.polyfit(t - t.mean(), e, 1)[0])

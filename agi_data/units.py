"""Units and physical constants used across agi-data.

The project's unit system is the metal-style MD set: positions in Å, time in
ps, velocities in Å/ps, forces in eV/Å, energies in eV, masses in atomic mass
units (u), temperature in K. Every stored variable records its unit in
``attrs["units"]``; this module is the single source of those strings and of
the conversion factors between them.
"""

from __future__ import annotations

import ase.units as _ase_units

#: Boltzmann constant, eV/K (CODATA 2018).
KB_EV_PER_K = 8.617333262e-5
#: 1 Ry in eV (CODATA 2018, the value Quantum ESPRESSO uses)
RYDBERG_EV = 13.605693122994

#: 1 u·Å²/ps² expressed in eV (kinetic energy of a mass in u moving at Å/ps).
#: 1 u = 1.66053906660e-27 kg; 1 Å/ps = 100 m/s; 1 eV = 1.602176634e-19 J.
#: one ASE velocity unit, sqrt(eV/amu), in Å/ps (ASE's time unit is Å·sqrt(amu/eV) ≈ 10.18 fs), with ASE's
#: own constants so that velocities written by ASE read back exactly
ASE_VELOCITY_IN_A_PER_PS = 1000.0 * _ase_units.fs

AMU_A2_PS2_IN_EV = 1.66053906660e-27 * 100.0**2 / 1.602176634e-19

#: 1 cm²/s in Å²/ps (diffusion coefficients): 1e16 Å² / 1e12 ps.
CM2_PER_S_IN_A2_PER_PS = 1e4

#: unit strings recorded in attrs
UNITS = {
    "positions": "Å",
    "velocities": "Å/ps",
    "forces": "eV/Å",
    "energies": "eV",
    "cell": "Å",
    "time": "ps",
    "centres": "Å",
    "spread": "Å^2",
    "frame_time": "ps",
    "temperature": "K",
    "mass": "u",
}


def kT_over_m(temperature_K: float, mass_u: float) -> float:
    """k_B T / m in (Å/ps)², the equipartition value of ⟨v_x²⟩."""
    return KB_EV_PER_K * temperature_K / (mass_u * AMU_A2_PS2_IN_EV)

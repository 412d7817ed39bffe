"""Conversion factors the interop layer needs (move to units.py)."""

from __future__ import annotations

#: 1 eV in kJ/mol: e · N_A / 1000 (exact SI 2019 constants). # move to units.py
EV_IN_KJ_PER_MOL = 1.602176634e-19 * 6.02214076e23 / 1000.0
#: 1 kcal in kJ (thermochemical calorie). # move to units.py
KCAL_IN_KJ = 4.184

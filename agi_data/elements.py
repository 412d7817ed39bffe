"""Element symbols, atomic numbers and masses (from ASE's tables)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from ase.data import atomic_masses, atomic_numbers, chemical_symbols


class UnknownElementError(ValueError):
    """Raised for an element symbol or atomic number that does not exist."""


def to_atomic_numbers(species: Iterable[str | int]) -> np.ndarray:
    """Element symbols or atomic numbers → an int array of atomic numbers.

    Raises :class:`UnknownElementError` naming the first unknown entry.
    """
    out = []
    for s in species:
        if isinstance(s, (int, np.integer)) and not isinstance(s, bool):
            z = int(s)
            if not 1 <= z < len(chemical_symbols):
                raise UnknownElementError(f"unknown atomic number {s!r}")
        elif isinstance(s, str) and s in atomic_numbers and s != "X":
            z = atomic_numbers[s]
        else:
            raise UnknownElementError(f"unknown element {s!r}")
        out.append(z)
    return np.asarray(out, dtype=np.int16)


def symbols(numbers: Iterable[int]) -> list[str]:
    """Atomic numbers → element symbols."""
    return [chemical_symbols[int(z)] for z in numbers]


def mass(element: str | int) -> float:
    """Standard atomic mass in u."""
    z = int(to_atomic_numbers([element])[0])
    return float(atomic_masses[z])

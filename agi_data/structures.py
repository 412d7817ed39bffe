"""α-AgI structures shared by every workflow.

Superionic α-AgI: iodides on a body-centred cubic lattice (I at (0,0,0) and
(½,½,½) of each cubic cell, a ≈ 5.07 Å), Ag⁺ distributed over the 12
tetrahedral (12d) sites per cell, e.g. (½,¼,0), two Ag per cell on average.
"""

from __future__ import annotations

import itertools

import numpy as np
from ase import Atoms

#: lattice parameter of α-AgI near 750 K, Å (bcc iodide sublattice)
A_ALPHA_AGI = 5.07

#: the 12 tetrahedral (12d) sites of the bcc cell, fractional
TETRAHEDRAL_SITES = np.array(
    [p for base in [(0.5, 0.25, 0.0), (0.5, 0.75, 0.0)]
     for p in {perm for perm in itertools.permutations(base)}]
    + [p for base in [(0.0, 0.25, 0.5), (0.0, 0.75, 0.5)]
       for p in {perm for perm in itertools.permutations(base)}],
    dtype=float,
)
TETRAHEDRAL_SITES = np.unique(np.mod(TETRAHEDRAL_SITES, 1.0).round(6), axis=0)
assert len(TETRAHEDRAL_SITES) == 12


def iodide_bcc(n: int, a: float = A_ALPHA_AGI) -> Atoms:
    """The bcc iodide sublattice of an n×n×n supercell (2n³ iodides)."""
    cells = np.array(list(itertools.product(range(n), repeat=3)), dtype=float)
    basis = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    frac = (cells[:, None, :] + basis[None]).reshape(-1, 3) / n
    return Atoms("I" * len(frac), scaled_positions=frac, cell=np.eye(3) * a * n, pbc=True)


def tetrahedral_sites(n: int, a: float = A_ALPHA_AGI) -> np.ndarray:
    """Cartesian positions (12n³, 3) of the tetrahedral sites of an n×n×n supercell, Å."""
    cells = np.array(list(itertools.product(range(n), repeat=3)), dtype=float)
    frac = (cells[:, None, :] + TETRAHEDRAL_SITES[None]).reshape(-1, 3) / n
    return frac @ (np.eye(3) * a * n)


def alpha_agi(n: int = 1, a: float = A_ALPHA_AGI, *, seed: int | None = 0, min_ag_distance: float = 3.0,
              rattle: float = 0.0) -> Atoms:
    """An α-AgI n×n×n supercell: 2n³ I on bcc, 2n³ Ag on tetrahedral sites.

    With ``seed=None`` and n=1 the Ag take the ordered sites (½,¼,0) and
    (0,¾,½); otherwise the sites are drawn at random (seeded) with no two Ag
    closer than ``min_ag_distance`` Å. ``rattle`` adds Gaussian displacements
    of that standard deviation (Å) to every atom, seeded.
    """
    if n < 1:
        raise ValueError(f"supercell size n must be ≥ 1, got {n}")
    if a <= 0:
        raise ValueError(f"lattice parameter must be > 0 Å, got {a}")
    atoms = iodide_bcc(n, a)
    cell = atoms.cell.array
    n_ag = 2 * n**3
    if seed is None and n == 1:
        ag = np.array([[0.5, 0.25, 0.0], [0.0, 0.75, 0.5]]) @ cell
    else:
        from .pbc import distances

        rng = np.random.default_rng(seed)
        sites = tetrahedral_sites(n, a)
        for _attempt in range(200):
            chosen: list[int] = []
            for i in rng.permutation(len(sites)):
                if not chosen or distances(sites[[i]], sites[chosen], cell).min() >= min_ag_distance:
                    chosen.append(i)
                    if len(chosen) == n_ag:
                        break
            if len(chosen) == n_ag:
                break
        else:
            raise RuntimeError(f"could not place {n_ag} Ag at least {min_ag_distance} Å apart")
        ag = sites[chosen]
    atoms += Atoms("Ag" * n_ag, positions=ag)
    if rattle > 0:
        rng = np.random.default_rng(None if seed is None else seed + 1)
        atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
    atoms.wrap()
    return atoms


class StructureError(ValueError):
    """A structure that no workflow should start from."""


class OverlappingAtomsError(StructureError):
    """Two atoms are closer than the allowed minimum distance."""


def check_overlap(atoms: Atoms, min_distance: float = 1.0) -> None:
    """Raise :class:`OverlappingAtomsError` if two atoms are closer than ``min_distance`` Å (periodic images included)."""
    from ase.neighborlist import neighbor_list

    if len(atoms) == 0:
        raise StructureError("the structure has no atoms")
    i, j, d = neighbor_list("ijd", atoms, max(min_distance, 1e-6) * 1.0000001)
    if len(d) == 0:
        return
    k = int(np.argmin(d))
    if d[k] < min_distance:
        sym = atoms.get_chemical_symbols()
        raise OverlappingAtomsError(
            f"atoms {i[k]} ({sym[i[k]]}) and {j[k]} ({sym[j[k]]}) are {d[k]:.3f} Å apart, closer than "
            f"{min_distance} Å; remove one of them or fix the coordinates (wrong units? duplicated atom?)"
        )

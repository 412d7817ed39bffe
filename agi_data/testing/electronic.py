r"""A synthetic α-AgI run whose lone pairs follow a known, rotation-covariant rule of their surroundings.

Each frame is an independent α-AgI configuration (bcc iodides, Ag on
randomly occupied tetrahedral sites, Gaussian thermal displacements). The
four lone-pair centres of iodide i form a **regular** tetrahedron (the
physical case) oriented by two smooth neighbour vectors

.. math:: \mathbf a_i = \sum_{j\in\mathrm{Ag}} f_c(r_{ij})\,\hat r_{ij},\qquad
          \mathbf b_i = \sum_{j\in\mathrm{I}} f_c(r_{ij})\,\hat r_{ij},

(f_c(r) = ½(cos(πr/r_c) + 1) for r < r_c = ``RULE_CUTOFF``, every periodic
image included): one lone pair points along â (towards the Ag density), and
a mirror plane of the tetrahedron contains b. With the frame
e₁ = â, e₂ = (b − (b·e₁)e₁)/|…|, e₃ = e₁ × e₂ the unit vectors to the centres are

.. math:: \hat u_0 = \mathbf e_1,\qquad
          \hat u_k = -\tfrac13\mathbf e_1 + \tfrac{2\sqrt2}{3}(\cos\varphi_k\,\mathbf e_2
          + \sin\varphi_k\,\mathbf e_3),\quad \varphi_k = 0, \tfrac{2\pi}{3}, \tfrac{4\pi}{3}.

Why this is a fair, known answer for an E(3)-equivariant ``1o + 3o`` model:
under a rotation Q of the surroundings a → Qa, b → Qb, so û_k → Qû_k; under
the inversion e₁, e₂ change sign but e₃ = e₁ × e₂ does not, and since the
set {φ_k} is symmetric under φ → −φ the corners go to {−û_k}: the ℓ = 3
moment is odd (3o), the dipole odd (1o). The rule is permutation invariant,
smooth wherever a ≠ 0 and b ∦ a (both are well conditioned in α-AgI: the
1 % quantiles of |a| and of |b⊥| are 0.23 and 0.10 of their RMS), and
every orientation of a regular tetrahedron is reachable, so the rotor
function has the isotropic RMS ≈ 0.378 of real lone pairs.

The dipole: the centre distances are d_k = d(1 + û_k·g) with
g = ``DIPOLE_COUPLING`` · a (Å⁻¹·Å, dimensionless), so the directions — hence
the ℓ = 3 moment — stay those of a regular tetrahedron while
μ = −2e Σ_k d_k û_k = −(8/3) e d g (Σ_k û_k û_kᵀ = (4/3)·1): the electrons
shift towards the Ag density. The Ag 4d centres form a fixed bipyramid
around each Ag (:mod:`agi_data.testing.paddlewheel`).
"""

from __future__ import annotations

import numpy as np
from ase.neighborlist import neighbor_list

from ..structures import A_ALPHA_AGI, alpha_agi
from .paddlewheel import BIPYRAMID, D_SHELL_DISTANCE, LONE_PAIR_DISTANCE, wannier_dataset
from .processes import trajectory_dataset

__all__ = ["RULE_CUTOFF", "DIPOLE_COUPLING", "rule_vectors", "tetrahedron_from_frame", "lone_pair_centres",
           "synthetic_lone_pair_run"]

#: range of the neighbour vectors a (Ag) and b (I) that orient the lone pairs, Å
RULE_CUTOFF = 5.5
#: g = DIPOLE_COUPLING · a: relative stretch of the centre distances along a (|g| ≤ 0.3 in α-AgI)
DIPOLE_COUPLING = 0.2
_PHI = 2 * np.pi * np.arange(3) / 3


def rule_vectors(atoms) -> tuple[np.ndarray, np.ndarray]:
    """(a, b), each (n_I, 3): the Ag and I neighbour vectors of the rule for the iodides of an ASE ``Atoms``."""
    z = atoms.numbers
    i, j, d = neighbor_list("ijD", atoms, RULE_CUTOFF)
    r = np.linalg.norm(d, axis=1)
    w = (0.5 * (np.cos(np.pi * r / RULE_CUTOFF) + 1))[:, None] * d / r[:, None]
    iodides = np.flatnonzero(z == 53)
    out = []
    for species in (47, 53):
        v = np.zeros((len(atoms), 3))
        keep = z[j] == species
        np.add.at(v, i[keep], w[keep])
        out.append(v[iodides])
    return out[0], out[1]


def tetrahedron_from_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Unit vectors (..., 4, 3) of the regular tetrahedron with a corner along a and a mirror plane containing b."""
    e1 = a / np.linalg.norm(a, axis=-1, keepdims=True)
    e2 = b - np.sum(b * e1, axis=-1, keepdims=True) * e1
    e2 = e2 / np.linalg.norm(e2, axis=-1, keepdims=True)
    e3 = np.cross(e1, e2)
    side = (np.cos(_PHI)[:, None] * e2[..., None, :] + np.sin(_PHI)[:, None] * e3[..., None, :])
    others = -e1[..., None, :] / 3 + (2 * np.sqrt(2) / 3) * side
    return np.concatenate([e1[..., None, :], others], axis=-2)


def lone_pair_centres(atoms) -> np.ndarray:
    """Displacements (n_I, 4, 3), Å, of each iodide's four centres from its nucleus under the rule above."""
    a, b = rule_vectors(atoms)
    u = tetrahedron_from_frame(a, b)
    g = DIPOLE_COUPLING * a
    dist = LONE_PAIR_DISTANCE * (1 + np.einsum("nka,na->nk", u, g))
    return dist[..., None] * u


def synthetic_lone_pair_run(n: int = 2, n_frames: int = 40, *, rattle: float = 0.15, dt_ps: float = 0.01,
                            seed: int = 0, a: float = A_ALPHA_AGI):
    """``(traj, wannier)``: ``n_frames`` independent α-AgI n×n×n configurations with centres on every frame.

    Iodides come first, then Ag (as in :func:`agi_data.structures.alpha_agi`).
    Frames are spaced ``dt_ps`` apart in the ``time`` coordinate for the
    schema's sake; they are not a dynamics (so any block of frames is as
    independent of the others as another seed's).
    """
    frames = [alpha_agi(n, a, seed=seed * 100_003 + f, rattle=rattle) for f in range(n_frames)]
    pos = np.stack([at.positions for at in frames])
    cell = frames[0].cell.array
    z = frames[0].numbers
    iod, ag = np.flatnonzero(z == 53), np.flatnonzero(z == 47)
    lp = np.stack([pos[f, iod, None] + lone_pair_centres(at) for f, at in enumerate(frames)])
    dd = pos[:, ag, None] + D_SHELL_DISTANCE * BIPYRAMID[None, None]
    centres = np.concatenate([lp.reshape(n_frames, -1, 3), dd.reshape(n_frames, -1, 3)], axis=1)
    centres = np.mod(centres @ np.linalg.inv(cell), 1.0) @ cell  # wrapped, as wannier90 writes them
    traj = trajectory_dataset(pos, list(frames[0].get_chemical_symbols()), cell, dt_ps,
                              attrs={"run_id": f"synthetic-lone-pairs-{seed}"})
    wan = wannier_dataset(np.arange(n_frames), centres, frame_time=np.arange(n_frames) * dt_ps)
    return traj, wan

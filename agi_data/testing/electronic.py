r"""A synthetic α-AgI run whose lone pairs follow a known, rotation-covariant rule of their surroundings.

Each frame is an independent α-AgI configuration (bcc iodides, Ag on
randomly occupied tetrahedral sites, Gaussian thermal displacements). The
four lone-pair centres of iodide i sit at ``LONE_PAIR_DISTANCE`` along

.. math:: \hat u_k = \frac{A_i t_k}{|A_i t_k|},\qquad
          A_i = [\mathbf v_1\ \mathbf v_2\ \mathbf v_3],\qquad
          \mathbf v_a = \sum_{j\ne i} f_{s_j}\, w_a(r_{ij})\, \hat r_{ij},

with t_k the corners of a regular tetrahedron (:data:`TETRAHEDRON`), the
sum over every neighbour and periodic image within ``RULE_CUTOFF``,
species factors f_Ag = 1, f_I = ½ and three Gaussian shells
w_a(r) = exp(−(r − ρ_a)²/2σ²)·f_c(r) with a smooth cosine cut-off f_c.
Under any rotation or inversion Q of the surroundings A → QA, so û_k → Qû_k:
the rule is E(3)-covariant, permutation invariant and smooth wherever A is
not singular — a distorted tetrahedron whose body axes follow three
neighbour-shell dipoles. Its ℓ = 3 moment is, up to the normalisation of the
û_k, the ℓ = 3 part of v₁ ⊗ v₂ ⊗ v₃ (Σ_k t_k ⊗ t_k ⊗ t_k of a regular
tetrahedron has only xyz components). Caveat: since Σ_k t_k = 0, the
dipole −2d Σ_k û_k comes entirely from the per-centre normalisation and is
dominated by frames where some |A t_k| is small — a hard target; the model
has not learned this rule yet (docs/electronic.md, "Learnability"). The Ag 4d centres form a fixed
bipyramid around each Ag (:mod:`agi_data.testing.paddlewheel`).
"""

from __future__ import annotations

import numpy as np
from ase.neighborlist import neighbor_list

from ..structures import A_ALPHA_AGI, alpha_agi
from .paddlewheel import BIPYRAMID, D_SHELL_DISTANCE, LONE_PAIR_DISTANCE, TETRAHEDRON, wannier_dataset
from .processes import trajectory_dataset

__all__ = ["RULE_CUTOFF", "RULE_SHELLS", "lone_pair_directions", "synthetic_lone_pair_run"]

#: neighbours that orient the lone pairs, Å
RULE_CUTOFF = 5.5
#: centres ρ_a (Å) of the three Gaussian shells, and their width σ (Å)
RULE_SHELLS = (2.8, 3.8, 4.6)
RULE_WIDTH = 0.5
_SPECIES_FACTOR = {47: 1.0, 53: 0.5}


def _shell_weights(r: np.ndarray) -> np.ndarray:
    cut = 0.5 * (np.cos(np.pi * np.clip(r / RULE_CUTOFF, 0, 1)) + 1)
    return np.exp(-((r[:, None] - np.asarray(RULE_SHELLS)) ** 2) / (2 * RULE_WIDTH**2)) * cut[:, None]


def lone_pair_directions(atoms) -> np.ndarray:
    """Unit vectors (n_I, 4, 3) of the rule above for the iodides of an ASE ``Atoms``, in atom order."""
    z = atoms.numbers
    i, j, d = neighbor_list("ijD", atoms, RULE_CUTOFF)
    r = np.linalg.norm(d, axis=1)
    f = np.array([_SPECIES_FACTOR[int(v)] for v in z[j]])
    contrib = (f[:, None] * _shell_weights(r))[:, :, None] * (d / r[:, None])[:, None, :]  # (E, 3 shells, xyz)
    v = np.zeros((len(atoms), 3, 3))
    np.add.at(v, i, contrib)
    iodides = np.flatnonzero(z == 53)
    a = np.swapaxes(v[iodides], 1, 2)  # A = [v1 v2 v3] as columns
    u = np.einsum("nab,kb->nka", a, TETRAHEDRON)
    return u / np.linalg.norm(u, axis=-1, keepdims=True)


def synthetic_lone_pair_run(n: int = 2, n_frames: int = 40, *, rattle: float = 0.15, dt_ps: float = 0.01,
                            seed: int = 0, a: float = A_ALPHA_AGI):
    """``(traj, wannier)``: ``n_frames`` independent α-AgI n×n×n configurations with centres on every frame.

    Iodides come first, then Ag (as in :func:`agi_data.structures.alpha_agi`).
    Frames are spaced ``dt_ps`` apart in the ``time`` coordinate for the
    schema's sake; they are not a dynamics.
    """
    frames = [alpha_agi(n, a, seed=seed * 100_003 + f, rattle=rattle) for f in range(n_frames)]
    pos = np.stack([at.positions for at in frames])
    cell = frames[0].cell.array
    z = frames[0].numbers
    iod, ag = np.flatnonzero(z == 53), np.flatnonzero(z == 47)
    lp = np.stack([pos[f, iod, None] + LONE_PAIR_DISTANCE * lone_pair_directions(at)
                   for f, at in enumerate(frames)])
    dd = pos[:, ag, None] + D_SHELL_DISTANCE * BIPYRAMID[None, None]
    centres = np.concatenate([lp.reshape(n_frames, -1, 3), dd.reshape(n_frames, -1, 3)], axis=1)
    centres = np.mod(centres @ np.linalg.inv(cell), 1.0) @ cell  # wrapped, as wannier90 writes them
    traj = trajectory_dataset(pos, list(frames[0].get_chemical_symbols()), cell, dt_ps,
                              attrs={"run_id": f"synthetic-lone-pairs-{seed}"})
    wan = wannier_dataset(np.arange(n_frames), centres, frame_time=np.arange(n_frames) * dt_ps)
    return traj, wan

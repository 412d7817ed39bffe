"""Synthetic Wannier data with known answers: tetrahedral lone pairs, rotating or not.

Used by the paddlewheel tests and by ``benchmarks/paddlewheel.py``.

>>> from agi_data.testing.paddlewheel import TETRAHEDRON, wannier_dataset, agi_lattice_with_centres
>>> traj, wan = agi_lattice_with_centres(n=1, n_frames=10)
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.spatial.transform import Rotation

from ..structures import A_ALPHA_AGI, iodide_bcc, tetrahedral_sites
from ..units import UNITS
from .processes import trajectory_dataset

__all__ = ["TETRAHEDRON", "BIPYRAMID", "LONE_PAIR_DISTANCE", "D_SHELL_DISTANCE", "wannier_dataset",
           "rotation_about", "agi_lattice_with_centres", "lazy_rotating_agi"]

#: unit vectors to the corners of a regular tetrahedron (a 2-fold axis along each Cartesian axis)
TETRAHEDRON = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=float) / np.sqrt(3.0)
#: 5 directions for the 5 Ag 4d centres (trigonal bipyramid)
BIPYRAMID = np.array([[0, 0, 1], [0, 0, -1], [1, 0, 0], [-0.5, np.sqrt(3) / 2, 0], [-0.5, -np.sqrt(3) / 2, 0]])
#: distance of the I lone-pair centres from the nucleus, Å (~0.75 Å with the 7-electron pseudopotential)
LONE_PAIR_DISTANCE = 0.75
#: distance of the Ag 4d centres from the nucleus, Å
D_SHELL_DISTANCE = 0.3


def wannier_dataset(frames, centres, *, frame_time=None, cell=None, spread=None) -> xr.Dataset:
    """A Wannier set in the store schema: ``centres(frame, wannier, xyz)`` with integer ``frame`` indices."""
    centres = np.asarray(centres)
    data = {"centres": (("frame", "wannier", "xyz"), centres, {"units": UNITS["centres"]})}
    if spread is not None:
        data["spread"] = (("frame", "wannier"), np.asarray(spread), {"units": UNITS["spread"]})
    if cell is not None:
        cell = np.asarray(cell, dtype=float)
        data["cell"] = ((("frame",) if cell.ndim == 3 else ()) + ("vec", "xyz"), cell, {"units": "Å"})
    coords = {"frame": ("frame", np.asarray(frames, dtype=np.int64)), "xyz": ["x", "y", "z"]}
    if frame_time is not None:
        coords["frame_time"] = ("frame", np.asarray(frame_time, dtype=float), {"units": "ps"})
    return xr.Dataset(data, coords=coords)


def rotation_about(axis, angle) -> np.ndarray:
    """Rotation matrices (..., 3, 3) by ``angle`` (rad, array) about ``axis`` (acting on column vectors)."""
    axis = np.asarray(axis, dtype=float)
    axis = axis / np.linalg.norm(axis)
    angle = np.asarray(angle, dtype=float)
    mats = Rotation.from_rotvec(np.multiply.outer(angle.ravel(), axis)).as_matrix()
    return mats.reshape(angle.shape + (3, 3))


def agi_lattice_with_centres(n: int = 1, n_frames: int = 20, *, dt_ps: float = 0.01, a: float = A_ALPHA_AGI,
                             orientations=None, ag_sites=None, noise: float = 0.0, seed: int = 0,
                             wannier_every: int = 1):
    """α-AgI on a perfect bcc lattice with 4 lone-pair centres per I and 5 centres per Ag.

    ``orientations``: rotation matrices ``(T, nI, 3, 3)`` (or ``(nI, 3, 3)``)
    applied to :data:`TETRAHEDRON` for each iodide (default: identity).
    ``ag_sites``: indices into :func:`agi_data.structures.tetrahedral_sites`
    per frame ``(T, nAg)`` (or ``(nAg,)``; default: 2n³ well-separated sites).
    ``noise``: Gaussian displacement (Å) of every nucleus, carried by its centres.
    Returns ``(traj, wannier)`` with centres on every ``wannier_every``-th frame.
    """
    rng = np.random.default_rng(seed)
    iod = iodide_bcc(n, a)
    cell = iod.cell.array
    r_i = np.broadcast_to(iod.positions, (n_frames,) + iod.positions.shape)
    sites = tetrahedral_sites(n, a)
    if ag_sites is None:
        ag_sites = np.arange(0, len(sites), 6)[: 2 * n**3]
    ag_sites = np.asarray(ag_sites)
    if ag_sites.ndim == 1:
        ag_sites = np.broadcast_to(ag_sites, (n_frames, ag_sites.size))
    r_ag = sites[ag_sites]
    n_i, n_ag = r_i.shape[1], r_ag.shape[1]
    pos = np.concatenate([r_i, r_ag], axis=1)
    pos = pos + rng.normal(scale=noise, size=pos.shape) if noise else pos.copy()
    if orientations is None:
        orientations = np.eye(3)
    rot = np.broadcast_to(np.asarray(orientations, dtype=float), (n_frames, n_i, 3, 3))
    lp = pos[:, :n_i, None, :] + LONE_PAIR_DISTANCE * np.einsum("tiab,kb->tika", rot, TETRAHEDRON)
    d = pos[:, n_i:, None, :] + D_SHELL_DISTANCE * BIPYRAMID[None, None]
    centres = np.concatenate([lp.reshape(n_frames, -1, 3), d.reshape(n_frames, -1, 3)], axis=1)
    centres = np.mod(centres @ np.linalg.inv(cell), 1.0) @ cell  # wrapped, as wannier90 writes them
    pos = np.mod(pos @ np.linalg.inv(cell), 1.0) @ cell
    traj = trajectory_dataset(pos, ["I"] * n_i + ["Ag"] * n_ag, cell, dt_ps)
    frames = np.arange(0, n_frames, wannier_every)
    wan = wannier_dataset(frames, centres[frames], frame_time=frames * dt_ps)
    return traj, wan


def lazy_rotating_agi(n: int = 3, n_frames: int = 80_000, *, dt_ps: float = 0.0005, chunk: int = 2000,
                      a: float = A_ALPHA_AGI, omega_per_ps: float = 5.0, seed: int = 0):
    """A large α-AgI run with rotating lone pairs, generated lazily block by block (Dask).

    Iodide i's tetrahedron turns at ``omega_per_ps`` (rad/ps) about its own
    fixed random axis; nuclei vibrate as deterministic sums of sines. Memory
    is bounded by ``chunk`` frames: nothing is materialised until computed.
    Default: the earlier study's size, 108 ions × 80 000 frames, 486 centres.
    """
    import dask.array as da

    rng = np.random.default_rng(seed)
    iod = iodide_bcc(n, a)
    cell = iod.cell.array
    sites = tetrahedral_sites(n, a)
    n_i = len(iod)
    n_ag = 2 * n**3
    base = np.concatenate([iod.positions, sites[rng.choice(len(sites), n_ag, replace=False)]])
    axes = rng.normal(size=(n_i, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    phase0 = Rotation.random(n_i, random_state=seed).as_matrix()
    tetra_body = np.matmul(phase0, TETRAHEDRON.T)  # (nI, 3, 4)
    amp = rng.uniform(0.05, 0.15, size=base.shape)
    freq = rng.uniform(5.0, 20.0, size=base.shape)
    n_atoms = n_i + n_ag
    n_w = 4 * n_i + 5 * n_ag

    def positions_block(t_idx):
        t = t_idx.astype(float) * dt_ps
        return base[None] + amp[None] * np.sin(freq[None] * t[:, None, None])

    def centres_block(t_idx):
        t = t_idx.astype(float) * dt_ps
        pos = positions_block(t_idx)
        rotvec = ((omega_per_ps * t)[:, None, None] * axes[None]).reshape(-1, 3)
        rot = Rotation.from_rotvec(rotvec).as_matrix().reshape(len(t), n_i, 3, 3)
        corners = np.matmul(rot, tetra_body)  # (T, nI, 3, 4): each iodide's tetrahedron, turned
        lp = pos[:, :n_i, None, :] + LONE_PAIR_DISTANCE * np.swapaxes(corners, -1, -2)
        dd = pos[:, n_i:, None, :] + D_SHELL_DISTANCE * BIPYRAMID[None, None]
        c = np.concatenate([lp.reshape(len(t), -1, 3), dd.reshape(len(t), -1, 3)], axis=1)
        return np.mod(c @ inv_cell, 1.0) @ cell

    inv_cell = np.linalg.inv(cell)
    idx = da.arange(n_frames, chunks=chunk)
    pos = da.map_blocks(lambda b: positions_block(b).astype(np.float32), idx, new_axis=[1, 2],
                        chunks=(idx.chunks[0], (n_atoms,), (3,)), dtype=np.float32)
    cen = da.map_blocks(lambda b: centres_block(b).astype(np.float32), idx, new_axis=[1, 2],
                        chunks=(idx.chunks[0], (n_w,), (3,)), dtype=np.float32)
    symbols = ["I"] * n_i + ["Ag"] * n_ag
    one = trajectory_dataset(base[None], symbols, cell, dt_ps, dtype=np.float32)
    traj = xr.Dataset(
        {"positions": (("time", "atom", "xyz"), pos, {"units": UNITS["positions"]}), "cell": one["cell"]},
        coords={"time": ("time", np.arange(n_frames) * dt_ps, {"units": "ps"}), "species": one["species"],
                "symbol": one["symbol"], "xyz": one["xyz"], "vec": one["vec"]},
        attrs=dict(one.attrs, run_id="synthetic-paddlewheel"),
    )
    wan = xr.Dataset({"centres": (("frame", "wannier", "xyz"), cen, {"units": "Å"})},
                     coords={"frame": np.arange(n_frames), "xyz": ["x", "y", "z"]})
    return traj, wan

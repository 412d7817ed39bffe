r"""Seeded synthetic trajectories with known answers, in the store's schema.

Each generator returns an :class:`xarray.Dataset` that follows the
trajectory schema (``positions(time, atom, xyz)`` Å, optional
``velocities`` Å/ps, ``cell``, coordinates ``time`` ps, ``species``,
``symbol``), with the exact parameters of the process in ``attrs`` so a test
can compare an estimate with the truth:

* :func:`random_walk` — Brownian motion with diffusion coefficient D:
  Gaussian steps of variance 2DΔt per Cartesian component, so
  MSD(t) = 6Dt exactly in expectation, at every lag.
* :func:`ballistic` — free flight at constant Maxwell–Boltzmann velocities:
  MSD(t) = ⟨v²⟩t².
* :func:`ornstein_uhlenbeck` — Langevin velocities sampled exactly,
  v(t+Δt) = v(t)e^{−γΔt} + √(C₀/3 (1−e^{−2γΔt})) ξ, so
  VACF(t) = C₀e^{−γt} with C₀ = ⟨v·v⟩, D = C₀/(3γ), and the VDOS is the
  Lorentzian 2C₀γ/(γ² + (2πν)²). Positions are the trapezoidal integral of
  the velocities.
* :func:`ideal_gas` — independent uniform positions: g(r) = 1.
* :func:`bcc_lattice` — a perfect body-centred cubic lattice: neighbour
  shells at a√3/2 (8), a (6), a√2 (12), a√11/2 (24), a√3 (8), ...

Positions are wrapped into the cell (``wrapped=True``) the way an MD engine
writes them: each frame's true step is added to the previous wrapped
position and the result is wrapped into that frame's cell. Unwrapping with
minimum-image steps then gives back the true path exactly, for orthorhombic,
triclinic and time-dependent cells.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from ..elements import symbols, to_atomic_numbers
from ..units import UNITS

__all__ = [
    "trajectory_dataset", "wrap", "random_walk", "ballistic", "ornstein_uhlenbeck", "ideal_gas",
    "bcc_lattice", "BCC_SHELLS",
]

#: (distance / a, number of neighbours) of the first shells of a bcc lattice
BCC_SHELLS = [(np.sqrt(3) / 2, 8), (1.0, 6), (np.sqrt(2), 12), (np.sqrt(11) / 2, 24), (np.sqrt(3), 8), (2.0, 6)]


def _cell_array(cell, n_frames: int) -> np.ndarray:
    c = np.asarray(cell, dtype=np.float64)
    if c.ndim == 0:
        c = np.eye(3) * float(c)
    elif c.ndim == 1:
        c = np.diag(c)
    if c.shape == (3, 3):
        return c
    if c.shape != (n_frames, 3, 3):
        raise ValueError(f"cell must be a length, (3,), (3, 3) or (n_frames, 3, 3); got shape {c.shape}")
    return c


def _species_list(species: str | int | Sequence[str | int], n_atoms: int) -> np.ndarray:
    if isinstance(species, (str, int, np.integer)):
        species = [species] * n_atoms
    z = to_atomic_numbers(list(species))
    if len(z) != n_atoms:
        raise ValueError(f"got {len(z)} species for {n_atoms} atoms")
    return z


def wrap(positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Positions (T, N, 3) wrapped into the cell (3, 3) or (T, 3, 3) of each frame."""
    cell = np.asarray(cell, dtype=np.float64)
    c = cell[:, None] if cell.ndim == 3 else cell
    s = np.einsum("...i,...ij->...j", positions, np.linalg.inv(c))
    s -= np.floor(s)
    return np.einsum("...i,...ij->...j", s, c)


def _wrap_path(path: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Wrap a true path frame by frame as an MD engine does: previous wrapped position + step, wrapped."""
    if cell.ndim == 2:
        return wrap(path, cell)
    out = np.empty_like(path)
    out[0] = wrap(path[:1], cell[:1])[0]
    steps = np.diff(path, axis=0)
    for t in range(1, len(path)):  # time-dependent cell: a sequential recursion by nature
        out[t] = wrap((out[t - 1] + steps[t - 1])[None], cell[t:t + 1])[0]
    return out


def trajectory_dataset(positions: np.ndarray, species: str | int | Sequence[str | int], cell, timestep_ps: float,
                       *, velocities: np.ndarray | None = None, attrs: dict | None = None,
                       dtype=np.float64) -> xr.Dataset:
    """Build a Dataset in the store's trajectory schema from numpy arrays.

    ``positions`` (T, N, 3) Å; ``species`` one symbol/number or one per atom;
    ``cell`` a box length, (3,), (3, 3) or (T, 3, 3) in Å (rows are the
    lattice vectors); ``velocities`` (T, N, 3) Å/ps.
    """
    positions = np.asarray(positions)
    T, N = positions.shape[:2]
    z = _species_list(species, N)
    cell = _cell_array(cell, T)
    data = {"positions": (("time", "atom", "xyz"), positions.astype(dtype), {"units": UNITS["positions"]})}
    if velocities is not None:
        data["velocities"] = (("time", "atom", "xyz"), np.asarray(velocities).astype(dtype),
                              {"units": UNITS["velocities"]})
    cell_dims = ("vec", "xyz") if cell.ndim == 2 else ("time", "vec", "xyz")
    data["cell"] = (cell_dims, cell, {"units": UNITS["cell"]})
    ds = xr.Dataset(
        data,
        coords={
            "time": ("time", np.arange(T) * float(timestep_ps), {"units": UNITS["time"]}),
            "species": ("atom", z, {"long_name": "atomic number"}),
            "symbol": ("atom", np.array(symbols(z)), {"long_name": "element"}),
            "xyz": ["x", "y", "z"],
            "vec": ["a", "b", "c"],
        },
        attrs={"run_id": "synthetic", "timestep_ps": float(timestep_ps), "engine": "agi_data.testing"},
    )
    ds.attrs.update(attrs or {})
    return ds


def _finish(path, species, cell, dt, *, velocities=None, wrapped=True, attrs=None, dtype=np.float64):
    cell_arr = _cell_array(cell, len(path))
    pos = _wrap_path(path, cell_arr) if wrapped else path
    ds = trajectory_dataset(pos, species, cell_arr, dt, velocities=velocities, attrs=attrs, dtype=dtype)
    if not wrapped:
        ds["positions"].attrs["unwrapped"] = True
    return ds


def random_walk(n_atoms: int = 64, n_frames: int = 1000, *, D: float = 0.5, dt: float = 0.01, cell=20.0,
                species="Ag", seed: int = 0, wrapped: bool = True, dtype=np.float64) -> xr.Dataset:
    """Brownian motion with diffusion coefficient ``D`` (Å²/ps), frame interval ``dt`` (ps).

    Each step is Gaussian with variance 2DΔt per component; MSD(t) = 6Dt.
    ``attrs``: ``D_true`` (Å²/ps).
    """
    rng = np.random.default_rng(seed)
    cell_arr = _cell_array(cell, n_frames)
    c0 = cell_arr[0] if cell_arr.ndim == 3 else cell_arr
    start = rng.random((n_atoms, 3)) @ c0
    steps = rng.normal(scale=np.sqrt(2 * D * dt), size=(n_frames - 1, n_atoms, 3))
    path = np.concatenate([start[None], start + np.cumsum(steps, axis=0)])
    return _finish(path, species, cell_arr, dt, wrapped=wrapped, dtype=dtype,
                   attrs={"D_true": D, "process": "random walk"})


def ballistic(n_atoms: int = 64, n_frames: int = 200, *, v_rms: float = 5.0, dt: float = 0.001, cell=20.0,
              species="Ag", seed: int = 0, wrapped: bool = True) -> xr.Dataset:
    """Free flight: r(t) = r₀ + v t with Gaussian velocities of ⟨v·v⟩ = ``v_rms``² (Å/ps).

    ``attrs``: ``v2_mean`` — the sample mean of |v|² over the atoms, so
    MSD(t) = v2_mean · t² holds exactly.
    """
    rng = np.random.default_rng(seed)
    cell_arr = _cell_array(cell, n_frames)
    c0 = cell_arr[0] if cell_arr.ndim == 3 else cell_arr
    v = rng.normal(scale=v_rms / np.sqrt(3), size=(n_atoms, 3))
    start = rng.random((n_atoms, 3)) @ c0
    t = np.arange(n_frames) * dt
    path = start[None] + t[:, None, None] * v[None]
    vel = np.broadcast_to(v, path.shape).copy()
    return _finish(path, species, cell_arr, dt, velocities=vel, wrapped=wrapped,
                   attrs={"v2_mean": float((v * v).sum(-1).mean()), "process": "ballistic"})


def ornstein_uhlenbeck(n_atoms: int = 64, n_frames: int = 4000, *, gamma: float = 10.0, c0: float = 3.0,
                       dt: float = 0.005, cell=30.0, species="Ag", seed: int = 0,
                       wrapped: bool = True) -> xr.Dataset:
    """Ornstein–Uhlenbeck (Langevin) velocities, sampled exactly on the frame grid.

    ``gamma`` (1/ps) is the friction rate and ``c0`` = ⟨v·v⟩ in (Å/ps)².
    The VACF is C(t) = c0·e^{−γt}; D = c0/(3γ). Velocities start from the
    stationary distribution. ``attrs``: ``gamma``, ``c0``, ``D_true``.
    """
    rng = np.random.default_rng(seed)
    cell_arr = _cell_array(cell, n_frames)
    c0_cell = cell_arr[0] if cell_arr.ndim == 3 else cell_arr
    sigma = np.sqrt(c0 / 3.0)
    decay = np.exp(-gamma * dt)
    kick = sigma * np.sqrt(1.0 - decay**2)
    v = np.empty((n_frames, n_atoms, 3))
    v[0] = rng.normal(scale=sigma, size=(n_atoms, 3))
    noise = rng.normal(scale=kick, size=(n_frames - 1, n_atoms, 3))
    # the exact AR(1) update of an OU process sampled at interval dt
    for t in range(1, n_frames):
        v[t] = decay * v[t - 1] + noise[t - 1]
    start = rng.random((n_atoms, 3)) @ c0_cell
    steps = 0.5 * (v[1:] + v[:-1]) * dt
    path = np.concatenate([start[None], start + np.cumsum(steps, axis=0)])
    return _finish(path, species, cell_arr, dt, velocities=v, wrapped=wrapped,
                   attrs={"gamma": gamma, "c0": c0, "D_true": c0 / (3 * gamma), "process": "Ornstein-Uhlenbeck"})


def ideal_gas(n_atoms: int = 200, n_frames: int = 50, *, cell=20.0, species="Ar", seed: int = 0) -> xr.Dataset:
    """Independent, uniformly distributed positions in every frame: g(r) = 1 at every r."""
    rng = np.random.default_rng(seed)
    cell_arr = _cell_array(cell, n_frames)
    frac = rng.random((n_frames, n_atoms, 3))
    c = cell_arr[:, None] if cell_arr.ndim == 3 else cell_arr
    pos = np.einsum("...i,...ij->...j", frac, c)
    ds = trajectory_dataset(pos, species, cell_arr, 0.01, attrs={"process": "ideal gas"})
    return ds


def bcc_lattice(n: int = 4, a: float = 5.07, *, n_frames: int = 2, species="I") -> xr.Dataset:
    """A perfect bcc lattice of n×n×n cubic cells (2n³ atoms), repeated over ``n_frames`` frames.

    ``attrs``: ``a`` (Å); :data:`BCC_SHELLS` lists the shells.
    """
    from ..structures import iodide_bcc

    atoms = iodide_bcc(n, a)
    pos = np.broadcast_to(atoms.positions, (n_frames, len(atoms), 3)).copy()
    return trajectory_dataset(pos, species, atoms.cell.array, 0.01, attrs={"a": a, "process": "bcc lattice"})

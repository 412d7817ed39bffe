"""A store run as ``ase.Atoms``, frame by frame.

>>> from agi_data.interop.ase import atoms
>>> for a in atoms(store, "agi-750K", frames=slice(0, None, 10)):
...     a.get_potential_energy(), a.get_forces(), a.get_velocities()

Each ``Atoms`` has the run's elements, positions (Å), cell (Å, pbc on all
axes), velocities in ASE units (Å per ASE time unit: store Å/ps ÷ 1000·fs,
so ``get_velocities()`` and ``get_kinetic_energy()`` (eV) are right), and a
``SinglePointCalculator`` with the energy (eV) and forces (eV/Å) where the
run stores them; ``info`` carries ``run_id``, ``frame`` and ``time_ps``.
Frames are read one store chunk at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from ..units import ASE_VELOCITY_IN_A_PER_PS
from ._frames import BlockCache, require_frames
from .errors import InteropError

if TYPE_CHECKING:  # the store passes itself in: no import of the store's package here
    from ..store import Store

__all__ = ["atoms", "frame_indices"]


def frame_indices(frames: int | slice | Sequence[int] | None, n_frames: int) -> np.ndarray:
    """Frame selection → an array of indices in 0..n_frames-1 (negative indices count from the end)."""
    if frames is None:
        return np.arange(n_frames)
    if isinstance(frames, slice):
        return np.arange(n_frames)[frames]
    idx = np.atleast_1d(np.asarray(frames))
    if idx.dtype.kind not in "iu" or idx.ndim != 1:
        raise InteropError(f"frames must be an index, a slice or a sequence of indices, got {frames!r}")
    idx = np.where(idx < 0, idx + n_frames, idx)
    bad = idx[(idx < 0) | (idx >= n_frames)]
    if bad.size:
        raise InteropError(f"frames {bad[:5].tolist()} are outside the run's {n_frames} frames")
    return idx


def to_atoms(numbers: np.ndarray, arrays: dict, **info) -> Atoms:
    """One frame's arrays (store units, from a block read) → ``ase.Atoms`` in ASE units."""
    a = Atoms(numbers=numbers, positions=np.asarray(arrays["positions"], dtype=np.float64),
              cell=np.asarray(arrays["cell"], dtype=np.float64), pbc=True)
    if "velocities" in arrays:
        a.set_velocities(np.asarray(arrays["velocities"], dtype=np.float64) / ASE_VELOCITY_IN_A_PER_PS)
    results = {}
    if "energies" in arrays:
        results["energy"] = float(arrays["energies"])
    if "forces" in arrays:
        results["forces"] = np.asarray(arrays["forces"], dtype=np.float64)
    if results:
        a.calc = SinglePointCalculator(a, **results)
    a.info.update(info)
    return a


def atoms(store: Store, run_id: str, frames: int | slice | Sequence[int] | None = None, *,
          version: str | None = None) -> Iterator[Atoms]:
    """Yield the frames of a run as ``ase.Atoms`` (see the module docstring).

    ``frames``: ``None`` (all), an index, a slice, or a sequence of indices,
    in the order given. Raises :class:`InteropError` for frames outside the run.
    """
    ds = store.trajectory(run_id, version)
    n = require_frames(ds, run_id, "read")
    idx = frame_indices(frames, n)
    numbers = np.asarray(ds["species"].values, dtype=int)
    cache = BlockCache(ds)
    for i in idx:
        arrays = cache.frame(int(i))
        yield to_atoms(numbers, arrays, run_id=run_id, frame=int(i), time_ps=float(arrays["time"]))

"""Blocks of frames of a store run as numpy arrays: the one read path of every exporter and reader here."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import xarray as xr

from .errors import InteropError

#: the per-frame variables a block holds when the run stores them
VARIABLES = ("positions", "velocities", "forces", "cell", "energies")


def read_block(ds: xr.Dataset, start: int, stop: int) -> dict[str, np.ndarray]:
    """Frames ``start:stop`` of a run's Dataset (from :meth:`Store.trajectory`) as numpy arrays.

    Keys: ``time`` (ps) and those of :data:`VARIABLES` the run stores, in the
    store's units (Å, Å/ps, eV/Å, Å, eV). Reads only the chunks that hold
    these frames.
    """
    part = ds.isel(time=slice(start, stop))
    out = {"time": np.asarray(part["time"].values, dtype=np.float64)}
    for name in VARIABLES:
        if name in part.data_vars:
            out[name] = np.asarray(part[name].values)
    if "cell" in out and out["cell"].ndim == 2:
        out["cell"] = np.broadcast_to(out["cell"], (stop - start, 3, 3))
    return out


def iter_blocks(ds: xr.Dataset, block: int, start: int = 0, stop: int | None = None
                ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """``(first_frame, arrays)`` for consecutive blocks of at most ``block`` frames."""
    stop = ds.sizes["time"] if stop is None else stop
    for lo in range(start, stop, block):
        yield lo, read_block(ds, lo, min(lo + block, stop))


def store_chunk_frames(ds: xr.Dataset) -> int:
    """The run's chunk length along time (frames), from the Dask chunks of its positions."""
    chunks = ds["positions"].chunks
    return int(chunks[0][0]) if chunks and chunks[0] else max(1, ds.sizes["time"])


def require_frames(ds: xr.Dataset, run_id: str, what: str) -> int:
    n = int(ds.sizes["time"])
    if n == 0:
        raise InteropError(f"run {run_id!r} has no frames yet: nothing to {what}")
    return n


class BlockCache:
    """Frames of a run read one store chunk at a time and kept until a frame outside it is asked for.

    Sequential access (an MDAnalysis analysis, an ASE loop) reads each chunk
    once; memory holds one chunk of frames.
    """

    def __init__(self, ds: xr.Dataset, block: int | None = None):
        self.ds = ds
        self.n_frames = int(ds.sizes["time"])
        self.block = int(block) if block else store_chunk_frames(ds)
        self._lo = self._hi = -1
        self._arrays: dict[str, np.ndarray] = {}

    def frame(self, i: int) -> dict[str, np.ndarray]:
        """The arrays of frame ``i`` (0 ≤ i < n_frames), views into the cached block."""
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} is outside the run's {self.n_frames} frames")
        if not self._lo <= i < self._hi:
            self._lo = (i // self.block) * self.block
            self._hi = min(self._lo + self.block, self.n_frames)
            self._arrays = read_block(self.ds, self._lo, self._hi)
        return {k: v[i - self._lo] for k, v in self._arrays.items()}

    def clear(self) -> None:
        self._lo = self._hi = -1
        self._arrays = {}

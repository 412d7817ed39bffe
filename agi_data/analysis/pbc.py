"""Periodic boundary conditions: minimum image and unwrapping, for any cell.

Cells are matrices whose *rows* are the lattice vectors (Å), as in ASE and
the store's ``cell(time, vec, xyz)``. Fractional coordinates s satisfy
r = s @ cell.

The minimum image is taken in fractional coordinates (s − round(s)); this is
exact for orthorhombic cells and for any cell when the displacement is
shorter than half the smallest perpendicular width, which holds for
frame-to-frame displacements and for neighbour searches within that width.
"""

from __future__ import annotations

import numpy as np


def minimum_image(d: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Minimum-image displacement vectors.

    ``d``: (..., 3) displacements in Å; ``cell``: (3, 3), or (..., 3, 3)
    broadcastable against ``d``'s leading axes with one extra atom axis
    (e.g. d (T, N, 3) with cell (T, 1, 3, 3)). Returns the same shape as d.
    """
    cell = np.asarray(cell, dtype=np.float64)
    inv = np.linalg.inv(cell)
    s = np.einsum("...i,...ij->...j", d, inv)
    s -= np.round(s)
    return np.einsum("...i,...ij->...j", s, cell)


def unwrap_numpy(positions: np.ndarray, cells: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """Unwrap positions (T, N, 3) by accumulating minimum-image steps.

    ``cells``: (T, 3, 3) or (3, 3). ``start``: the unwrapped position of the
    frame before the first (for blockwise unwrapping), else the first frame
    is kept as it is. Accumulation is in float64. Valid while no atom moves
    more than half a cell width between frames.
    """
    pos = np.asarray(positions, dtype=np.float64)
    cells = np.asarray(cells, dtype=np.float64)
    steps = np.diff(pos, axis=0)
    step_cells = cells[1:, None] if cells.ndim == 3 else cells
    steps = minimum_image(steps, step_cells)
    out = np.empty_like(pos)
    if start is None:
        out[0] = pos[0]
    else:
        c0 = cells[0] if cells.ndim == 3 else cells
        out[0] = start + minimum_image(pos[0] - start, c0)
    np.cumsum(steps, axis=0, out=out[1:])
    out[1:] += out[0]
    return out


def distances(a: np.ndarray, b: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Minimum-image distance matrix between point sets a (Na, 3) and b (Nb, 3) in one cell."""
    d = b[None, :, :] - a[:, None, :]
    return np.linalg.norm(minimum_image(d, cell), axis=-1)
